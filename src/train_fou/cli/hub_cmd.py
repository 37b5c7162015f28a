"""`train-fou hub scan|drive`: find LEGO hubs, drive a motor by hand (SPEC §7).

`drive` connects (the sim backend by default), sets the power, keeps the
dead-man fed for `--for` seconds, then brakes and waits for the hub's
acknowledgement; SIGINT, SIGTERM, SIGHUP and any error end the drive the same
way (train_fou.stopping). `--trace` prints every LWP3 message: `> ` sent,
`< ` received.
"""
from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time

HELP = 'LEGO hub: `scan` lists hubs nearby, `drive` runs a motor at a power for a while, then brakes'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest='hub_command', metavar='ACTION')
    sub.required = True
    scan = sub.add_parser('scan', help='list LEGO hubs advertising the LWP3 service')
    scan.add_argument('--backend', choices=('ble', 'sim'), default='ble', help='default: %(default)s')
    scan.add_argument('--timeout', type=float, default=5.0, help='scan time in seconds (default: %(default)s)')
    drive = sub.add_parser('drive', help='run a motor at --power for --for seconds, then brake')
    drive.add_argument('--backend', choices=('sim', 'ble'), default='sim', help='default: %(default)s')
    drive.add_argument('--name', default='', help='advertised name of the hub (ble)')
    drive.add_argument('--address', default='', help='BLE address of the hub (ble)')
    drive.add_argument('--port', default='A', help='motor port A-D (default: %(default)s)')
    drive.add_argument('--power', type=int, default=30, help='-100..100 percent (default: %(default)s)')
    drive.add_argument('--for', dest='duration', type=float, default=2.0, metavar='S',
                       help='seconds at that power before braking (default: %(default)s)')
    drive.add_argument('--timeout', type=float, default=10.0, help='scan/connect time in seconds')
    drive.add_argument('--trace', action='store_true', help='print every LWP3 message as hex')


def run(args: argparse.Namespace) -> int:
    return {'scan': _scan, 'drive': _drive}[args.hub_command](args)


def _seconds(option: str, value: float, low: float = 0.0) -> None:
    """A finite number of seconds >= low, else one CliError line."""
    from train_fou.cli import CliError
    if not (math.isfinite(value) and value >= low):
        raise CliError(f'{option} {value:g}: expected a finite number of seconds >= {low:g}')


def _scan(args: argparse.Namespace) -> int:
    from train_fou.cli import CliError
    from train_fou.hub import HubError, VirtualHub
    from train_fou.hub.transport import Advertiser

    _seconds('--timeout', args.timeout, 0.1)
    if args.backend == 'sim':
        hub = VirtualHub()
        seen = [Advertiser(hub.name, hub.address, hub.kind, hub.rssi)]
    else:
        from train_fou.hub.ble import BleTransport
        try:
            seen = asyncio.run(BleTransport().scan(args.timeout))
        except HubError as err:
            raise CliError(str(err)) from err
    for ad in seen:
        print(ad.describe())
    if not seen:
        print(f'no LEGO hub seen in {args.timeout:g} s (is it on, blinking, and not connected elsewhere?)',
              file=sys.stderr)
        return 1
    return 0


def _drive(args: argparse.Namespace) -> int:
    from train_fou.cli import CliError
    from train_fou.hub import HubSession, NoMotorError, SimTransport, VirtualHub
    from train_fou.lwp3.bytecodes import port_from_name, port_name
    from train_fou.stopping import StopSignals

    try:
        port = port_from_name(args.port)
    except ValueError as err:
        raise CliError(str(err)) from err
    if not -100 <= args.power <= 100:
        raise CliError(f'--power {args.power} outside -100..100')
    _seconds('--for', args.duration)
    _seconds('--timeout', args.timeout, 0.1)

    if args.backend == 'sim':
        hub = VirtualHub(on_order=lambda text: print(f'sim hub: {text}', flush=True))
        factory = lambda: SimTransport(hub)  # noqa: E731
    else:
        if not (args.name or args.address):
            raise CliError('--backend ble needs --name or --address (see `train-fou hub scan`)')
        from train_fou.hub.ble import BleTransport
        factory = lambda: BleTransport(args.name, args.address, args.timeout)  # noqa: E731

    def event(level: str, text: str) -> None:
        print(f'hub: {level}: {text}', file=sys.stderr, flush=True)

    def trace(direction: str, data: bytes) -> None:
        print(f'{direction} {data.hex()}', flush=True)

    # A port without a motor ends the session at once (NoMotorError): retrying cannot fix it here.
    session = HubSession(factory, port, backend=args.backend, on_event=event,
                         on_trace=trace if args.trace else None, connect_timeout_s=args.timeout + 30.0,
                         give_up_on=(NoMotorError,))
    acknowledged = False
    with StopSignals() as stop:
        session.start()
        try:
            ready = _wait(lambda: session.status.ready or not session.running, args.timeout + 30.0, stop)
            if stop.is_set():
                pass
            elif not ready or not session.status.ready:
                raise CliError(f'hub not ready: {session.status.last_error or "timed out"}')
            else:
                session.command(args.power)
                if not _wait(lambda: session.status.applied_power == args.power and not session.status.braked,
                             5.0, stop) and not stop.is_set():
                    raise CliError(f'power {args.power} not applied: {session.status.last_error or "timed out"}')
                end = time.monotonic() + args.duration
                while time.monotonic() < end and not stop.is_set():  # keep the dead-man fed
                    session.command(args.power)
                    stop.wait(min(0.1, max(0.0, end - time.monotonic())))
        finally:
            acknowledged = session.stop()  # brake, wait for the acknowledgement, disconnect
    where = f'port {port_name(port)} of {session.status.name or "the hub"}'
    if acknowledged:
        stopped = f' (stopped by signal {stop.signum})' if stop.signum is not None else ''
        print(f'{where}: brake acknowledged{stopped}', file=sys.stderr)
        return stop.exit_code(0)
    print(f'{where}: brake NOT acknowledged', file=sys.stderr)
    return 1


def _wait(predicate, timeout_s: float, stop, step_s: float = 0.02) -> bool:
    """True once predicate() holds; False after timeout_s or when `stop` is set."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not stop.is_set():
        if predicate():
            return True
        stop.wait(step_s)
    return bool(predicate())
