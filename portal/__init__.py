"""The domain shared by the web tier and the activities: models, settings, portal policy,
passwords and tokens."""
