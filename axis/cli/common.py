"""What the ``axis`` commands share: the data folder and database options, opening the store,
and failing with one line on stderr."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import click
from rich.console import Console

from axis.errors import AxisError, DataDirError
from axis.host import datadir, runtime
from axis.host.datadir import DataDir
from axis.store import open_store
from axis.store.base import Store

T = TypeVar("T")
err = Console(stderr=True)


def fail(message: str) -> None:
    """One line on stderr, exit status 1."""
    click.echo(f"axis: {message}", err=True)
    sys.exit(1)


def run_store(data: DataDir, db: str | None, work: Callable[[Store], Awaitable[T]]) -> T:
    """Open the data folder's store, run ``work`` on it, close it."""

    async def go() -> T:
        store = open_store(data.database_url(db))
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return runtime.run(go())
    except AxisError as exc:
        fail(str(exc))
        raise  # unreachable: fail() exits


data_option = click.option(
    "--data",
    "data_dir",
    envvar="AXIS_DATA",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The data folder (default ./axis-data, or $AXIS_DATA).",
)
db_option = click.option(
    "--db", envvar="AXIS_DB", default=None, help="Database URL (default DATA/axis.db)."
)


def without_password(url: str) -> str:
    """A database URL fit to print: a password in it becomes ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def data_folder(data_dir: Path | None, need_init: bool = True) -> DataDir:
    """``--data`` resolved; unless ``need_init`` is False, one ``axis init`` has made."""
    data = datadir.resolve(data_dir)
    if need_init:
        try:
            data.require()
        except DataDirError as exc:
            fail(str(exc))
    return data
