"""Third-party health apps registering themselves, checked automatically and reviewed by staff."""
