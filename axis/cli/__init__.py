"""The ``axis`` command: set up a data folder, manage agencies and trust, run the hub, and ask
it for statistics and proofs; simulate a country of agencies against it and measure it.

Each group of commands is a module of this package; this one assembles them.
"""

from __future__ import annotations

import click

from axis.cli import agencies, operator, serve, setup, systems, testing


@click.group()
@click.version_option(package_name="axis-hub")
def main() -> None:
    """Axis: a national document interchange hub (edXML, QCVN 102:2016)."""


for command in (
    setup.init,
    setup.ca,
    agencies.agency,
    systems.system,
    serve.serve,
    operator.deliveries,
    operator.stats,
    operator.log_group,
    testing.simulate,
    testing.bench,
):
    main.add_command(command)
