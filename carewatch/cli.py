"""The ``carewatch`` command.

Subcommands:
  db migrate     apply migrations (and the TimescaleDB layer when available)
  db retention   remove raw device data older than the configured retention, now
  erase          erase a household's personal data (a resident who leaves the program)
  export         write everything carewatch holds about a household as JSON
  run            run ingest, detectors, alerting and the API against CAREWATCH_MQTT_URL / _DATABASE_URL
  demo           the whole system with a simulated fleet; embedded broker/database when no URL is set
  simulate       publish (or write) a simulated fleet
  backtest       replay stored history through the detectors and count the alerts they would raise
  broker         sync: reconcile the MQTT broker's access control with the registry; dynsec-config
  report         the district's monthly report (html, csv, pdf or json; docs/reports.md)
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Sequence

from carewatch.secret_files import SecretFileError
from carewatch.settings import Settings, load_settings
from i18n import N_, cli_language, messages

log = logging.getLogger("carewatch")


def _configure_logging(settings: Settings) -> None:
    from carewatch.logsafe import configure_logging

    configure_logging(settings.log_level)


def _require(value: str | None, name: str) -> str:
    if not value:
        say = messages(cli_language())
        raise SystemExit(
            say(
                N_("carewatch: {name} is not set (the demo starts embedded services; other commands need it)"),
                name=name,
            )
        )
    return value


def _cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from storage import migrate

    mode = migrate(_require(settings.database_url, "CAREWATCH_DATABASE_URL"), create_database=True)
    print(messages(cli_language())(N_("migrated; storage mode: {mode}"), mode=mode.value))
    return 0


def _cmd_retention(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import UTC, datetime

    from carewatch.retention import enforce, retention_from_settings

    database_url = _require(settings.database_url, "CAREWATCH_DATABASE_URL")
    report = enforce(database_url, retention_from_settings(settings), datetime.now(UTC), drop_now=True)
    for line in report.lines():
        print(line)
    return 0


def _cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from carewatch.personal_data_cli import run_export

    return run_export(args, _require(settings.database_url, "CAREWATCH_DATABASE_URL"))


def _cmd_erase(args: argparse.Namespace, settings: Settings) -> int:
    from carewatch.personal_data_cli import run_erase

    return run_erase(args, _require(settings.database_url, "CAREWATCH_DATABASE_URL"))


def _wait_for_signal(seconds: float | None) -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait(seconds)


def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from carewatch.runtime import Pipeline
    from storage import migrate

    database_url = _require(settings.database_url, "CAREWATCH_DATABASE_URL")
    mqtt_url = _require(settings.mqtt_url, "CAREWATCH_MQTT_URL")
    migrate(database_url, create_database=True)
    pipeline = Pipeline(settings=settings, mqtt_url=mqtt_url, database_url=database_url, serve_api=not args.no_api)
    pipeline.start()
    if not args.no_api:
        print(f"api: {pipeline.api_url}", flush=True)
    try:
        _wait_for_signal(None)
    finally:
        pipeline.stop()
    return 0


def _cmd_dispatch(args: argparse.Namespace, settings: Settings) -> int:
    from carewatch.dispatch_process import run_dispatcher

    database_url = _require(settings.database_url, "CAREWATCH_DATABASE_URL")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    # The MQTT URL is needed only to push to the caregiver app.
    mqtt_url = _require(settings.mqtt_url, "CAREWATCH_MQTT_URL") if settings.app_channel else ""
    if mqtt_url:
        from carewatch.broker.endpoints import service_mqtt_url
        from carewatch.broker.roles import Service

        mqtt_url = service_mqtt_url(settings, mqtt_url, Service.DISPATCHER)
    run_dispatcher(settings, mqtt_url, database_url, stop)
    return 0


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from carewatch.demo import run_demo

    return run_demo(settings, duration_s=args.duration, homes=args.homes, speed=args.speed, history=args.history)


def _cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from simulator.cli import run

    return run(args)


def _cmd_backtest(args: argparse.Namespace, settings: Settings) -> int:
    from carewatch.backtest_cli import run_backtest_command

    return run_backtest_command(args, _require(settings.database_url, "CAREWATCH_DATABASE_URL"))


def _cmd_broker(args: argparse.Namespace, settings: Settings) -> int:
    from carewatch.broker.commands import run

    return run(args, settings)


def _cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from carewatch.report_cli import run_report_command

    return run_report_command(args, _require(settings.database_url, "CAREWATCH_DATABASE_URL"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carewatch", description="Home-safety monitoring for older people")
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="database administration")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("migrate", help="apply migrations").set_defaults(handler=_cmd_migrate)
    db_commands.add_parser(
        "retention", help="remove raw device data older than CAREWATCH_RETENTION_RAW_DAYS / _REJECTS_DAYS now"
    ).set_defaults(handler=_cmd_retention)

    run = commands.add_parser("run", help="run the pipeline against configured services")
    run.add_argument("--no-api", action="store_true", help="do not serve the API from this process")
    run.set_defaults(handler=_cmd_run)

    dispatch = commands.add_parser(
        "dispatch", help="only deliver notifications and move escalations (scale out; SKIP LOCKED keeps it safe)"
    )
    dispatch.set_defaults(handler=_cmd_dispatch)

    demo = commands.add_parser("demo", help="run everything with a simulated fleet and scripted incidents")
    demo.add_argument(
        "--for",
        dest="duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop after SECONDS and print a summary (default: until interrupted)",
    )
    demo.add_argument("--homes", type=int, default=30, help="simulated homes (default 30)")
    demo.add_argument(
        "--speed", type=float, default=60.0, help="simulated seconds per real second for live traffic (default 60)"
    )
    demo.add_argument(
        "--no-history",
        dest="history",
        action="store_false",
        help="skip seeding last month's history (start with 13 hours of backfill only)",
    )
    demo.set_defaults(handler=_cmd_demo)

    simulate = commands.add_parser("simulate", help="publish or write a simulated fleet")
    from simulator.cli import add_arguments

    add_arguments(simulate)
    simulate.set_defaults(handler=_cmd_simulate)

    backtest = commands.add_parser("backtest", help="replay stored history through the detectors")
    from carewatch.backtest_cli import add_backtest_arguments

    add_backtest_arguments(backtest)
    backtest.set_defaults(handler=_cmd_backtest)

    broker = commands.add_parser("broker", help="the MQTT broker's access control (docs/operations.md, Security)")
    from carewatch.broker.commands import add_arguments as add_broker_arguments

    add_broker_arguments(broker)
    broker.set_defaults(handler=_cmd_broker)
    report = commands.add_parser("report", help="the district's monthly report (html, csv, pdf or json)")
    from carewatch.report_cli import add_report_arguments

    add_report_arguments(report)
    report.set_defaults(handler=_cmd_report)
    export = commands.add_parser("export", help="write everything carewatch holds about a household as JSON")
    export.set_defaults(handler=_cmd_export)
    erase = commands.add_parser("erase", help="erase a household's personal data (keeps alert statistics, audit)")
    erase.set_defaults(handler=_cmd_erase)
    from carewatch.personal_data_cli import add_arguments as add_personal_data_arguments

    add_personal_data_arguments(export, erase)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SecretFileError as exc:  # a *_FILE secret that cannot be used: say which, without a traceback
        raise SystemExit(f"carewatch: {exc}") from exc
    _configure_logging(settings)
    result: int = args.handler(args, settings)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
