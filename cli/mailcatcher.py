"""An SMTP server for development that keeps every message as an .eml file for the dev inbox."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiosmtpd.smtp import SMTP

log = logging.getLogger("acceso.mailcatcher")


class MailDirHandler:
    """aiosmtpd handler: one file per message, named so that sorting by name sorts by arrival."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        return self.store(envelope.rcpt_tos, envelope.original_content or envelope.content)

    def store(self, recipients: list[str], content: bytes) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        header = f"X-Original-To: {', '.join(recipients)}\r\n".encode()
        partial = self.directory / f".{name}.part"
        partial.write_bytes(header + content)
        os.replace(partial, self.directory / name)
        log.info("stored %s for %s", name, ", ".join(recipients))
        return "250 Message accepted for delivery"


async def serve(host: str, port: int, directory: Path) -> None:
    """Serve until SIGINT or SIGTERM; the file is on disk before the client hears 250."""
    handler = MailDirHandler(directory)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="acceso-mailcatcher", enable_SMTPUTF8=True), host, port
    )
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    bound = server.sockets[0].getsockname()[1]
    log.info("SMTP capture on %s:%s, writing to %s", host, bound, directory)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cli.mailcatcher", description="Capture SMTP mail into .eml files."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--dir", type=Path, required=True, help="where the .eml files go")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    try:
        asyncio.run(serve(args.host, args.port, args.dir))
    except OSError as error:
        print(f"mailcatcher: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
