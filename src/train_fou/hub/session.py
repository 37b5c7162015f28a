"""The hub session: one asyncio loop in its own thread owns the link to the hub.

It connects through a transport (a fresh one per attempt), writes a brake
first, waits for the motor's attached-I/O message, enables battery and alert
updates, then drives the motor from the newest command. Dead-man: no
`command()` for `deadman_timeout_s` -> brake. A lost link, a failed write or
"hub will switch off" -> the status says braked and disconnected, and the
session re-connects with exponential backoff. `stop()` writes a brake, waits
for the hub's feedback and disconnects. `inhibit(reason)` brakes and ignores
commands until `inhibit('')` (the node uses it when a second master publishes
speed commands).

The motor's port: the hub announces every attached device right after the
connection (attached-I/O messages, in a burst). A port announced with another
kind of device, or not announced once the burst has been quiet for
`attach_settle_s`, has no motor: NoMotorError at once, not after
`attach_timeout_s` (which still bounds a hub that announces nothing).
Errors in `give_up_on` end the session instead of reconnecting (`hub drive`
gives up on NoMotorError; the node keeps retrying: someone may plug the motor in).

The notification callback only enqueues (bleak style); a reader task parses.
Nothing here prints: events go to `on_event(level, text)`, raw bytes to
`on_trace('>'|'<', data)`, status changes to `on_status(HubStatus)`.
"""
from __future__ import annotations

import asyncio
import atexit
import dataclasses
import threading
import time
from dataclasses import dataclass
from collections.abc import Callable

from train_fou.hub.errors import HubError, NoMotorError
from train_fou.hub.transport import Transport, kind_name
from train_fou.lwp3.bytecodes import (
    POWER_BRAKE, POWER_OUTPUT_TYPES, AlertKind, AlertOperation, AlertStatus, HubAction, HubProperty,
    HubPropertyOperation, port_name)
from train_fou.lwp3.errors import Lwp3DecodeError
from train_fou.lwp3.messages import (
    AttachedIOMessage, DetachedIOMessage, GenericErrorMessage, HubActionMessage, HubAlertMessage,
    HubPropertyMessage, Message, PortOutputFeedbackMessage, WriteDirectModeDataMessage)
from train_fou.lwp3.parser import StreamParser

#: Alerts the session subscribes to after connecting.
ALERTS = (AlertKind.LOW_VOLTAGE, AlertKind.HIGH_CURRENT, AlertKind.LOW_SIGNAL_STRENGTH, AlertKind.OVER_POWER)
#: Hub announcements after which the link is gone.
LEAVING = {HubAction.WILL_SWITCH_OFF: 'hub will switch off', HubAction.WILL_DISCONNECT: 'hub will disconnect',
           HubAction.WILL_GO_INTO_BOOT_MODE: 'hub will go into boot mode'}


@dataclass(frozen=True)
class HubStatus:
    """What hub/state publishes."""

    connected: bool = False
    #: Connected, motor attached, battery and alert updates enabled: commands are applied.
    ready: bool = False
    name: str = ''
    address: str = ''
    kind: int = 0
    battery_pct: int = -1
    rssi: int = 0
    #: Power last written (0 while braked, floating or disconnected).
    applied_power: int = 0
    braked: bool = True
    latency_ms: float = 0.0
    backend: str = ''
    last_error: str = ''
    #: Why commands are ignored and the motor braked (a second master); empty: commands apply.
    inhibited: str = ''


def health(status: HubStatus) -> tuple[str, str]:
    """('ok' | 'warn' | 'error', one line) for /diagnostics: rqt_robot_monitor shows why at a glance."""
    if status.inhibited:
        return 'error', f'braked: {status.inhibited}'
    if not status.connected:
        return 'error', f'not connected: {status.last_error}' if status.last_error else 'not connected'
    if not status.ready:
        return 'warn', 'connected, waiting for the train motor (attached I/O)'
    if 0 <= status.battery_pct < 20:
        return 'warn', f'battery low: {status.battery_pct} %'
    state = 'braked' if status.braked else f'power {status.applied_power} %'
    return 'ok', f'connected to {status.name or status.address or "the hub"}: {state}'


class _LinkLost(HubError):
    pass


class HubSession:
    """Drive one motor port of one hub from `command()` calls, safely."""

    def __init__(self, transport_factory: Callable[[], Transport], port: int = 0, *, backend: str = '',
                 deadman_timeout_s: float = 0.5, ack_timeout_s: float = 1.0, attach_timeout_s: float = 5.0,
                 attach_settle_s: float = 0.5,
                 connect_timeout_s: float = 30.0, backoff_initial_s: float = 0.5, backoff_max_s: float = 8.0,
                 tick_s: float = 0.02, give_up_on: tuple[type[HubError], ...] = (),
                 on_status: Callable[[HubStatus], None] | None = None,
                 on_event: Callable[[str, str], None] | None = None,
                 on_trace: Callable[[str, bytes], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._factory = transport_factory
        self.port = port
        self.deadman_timeout_s = deadman_timeout_s
        self.ack_timeout_s = ack_timeout_s
        self.attach_timeout_s = attach_timeout_s
        self.attach_settle_s = attach_settle_s
        self.give_up_on = give_up_on
        self.connect_timeout_s = connect_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.tick_s = tick_s
        self._on_status = on_status
        self._on_event = on_event
        self._on_trace = on_trace
        self._clock = clock
        self._wall_ns = wall_clock_ns
        self._status = HubStatus(backend=backend)
        self._lock = threading.Lock()
        self._desired: tuple[int, bool, int, float] | None = None  # power, brake, stamp ns, received at
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._finished = threading.Event()
        self._inhibited = ''
        self._announced: dict[int, int] = {}
        self._announced_at = 0.0
        self._brake_acknowledged = False
        self._applied: int | None = None  # power byte last written on this connection
        self._deadman = False
        #: Successful connections so far (tests and logs).
        self.connections = 0

    # -- called from any thread -----------------------------------------------------------------

    @property
    def status(self) -> HubStatus:
        return self._status

    @property
    def running(self) -> bool:
        """Started and not ended (stopped, or given up on an error in `give_up_on`)."""
        return self._started.is_set() and not self._finished.is_set()

    def start(self) -> None:
        """Start the session thread and its event loop (returns at once)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._thread_main, name='hub-session', daemon=True)
        self._thread.start()
        self._started.wait()
        atexit.register(self.stop)  # an interpreter exit without stop() still brakes

    def command(self, power: int, brake: bool = False, source_stamp_ns: int = 0) -> None:
        """The newest order: power -100..100 (clamped), or brake. Feeds the dead-man."""
        power = max(-100, min(100, int(power)))
        with self._lock:
            self._desired = (power, bool(brake), int(source_stamp_ns), self._clock())
        self._wake_loop()

    def inhibit(self, reason: str) -> None:
        """Brake now and ignore commands while `reason` is not empty (hub/state says why); '' drives again."""
        with self._lock:
            self._inhibited = reason
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._apply_inhibit, reason)
            except RuntimeError:
                pass

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Brake, wait for the hub's acknowledgement, disconnect, end the thread. True if acknowledged."""
        atexit.unregister(self.stop)
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return self._brake_acknowledged
        try:
            loop.call_soon_threadsafe(self._request_stop)
        except RuntimeError:  # loop already closed
            pass
        thread.join(timeout_s)
        if thread.is_alive():
            self._event('error', f'hub session did not stop within {timeout_s:g} s')
        return self._brake_acknowledged

    # -- plumbing -------------------------------------------------------------------------------

    def _wake_loop(self) -> None:
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:
                pass

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._ack = asyncio.Event()
        self._attached = asyncio.Event()
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._parser = StreamParser()
        self._link_lost_reason: str | None = None
        self._generation = 0
        self._loop = loop
        self._started.set()
        try:
            loop.run_until_complete(self._main())
        except Exception as err:
            self._event('error', f'hub session crashed: {err!r}')
        finally:
            self._loop = None
            loop.close()
            self._finished.set()

    def _apply_inhibit(self, reason: str) -> None:
        before = self._status
        changes: dict = {'inhibited': reason}
        if reason:
            changes['last_error'] = reason
        elif before.last_error == before.inhibited:
            changes['last_error'] = ''
        self._set_status(**changes)
        self._wake.set()

    def _request_stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def _event(self, level: str, text: str) -> None:
        if self._on_event is not None:
            try:
                self._on_event(level, text)
            except Exception:
                pass

    def _trace(self, direction: str, data: bytes) -> None:
        if self._on_trace is not None:
            try:
                self._on_trace(direction, data)
            except Exception:
                pass

    def _set_status(self, **changes) -> None:
        new = dataclasses.replace(self._status, **changes)
        if new == self._status:
            return
        self._status = new
        if self._on_status is not None:
            try:
                self._on_status(new)
            except Exception as err:
                self._event('error', f'hub status callback failed: {err!r}')

    def _error(self, text: str) -> None:
        self._event('error', text)
        self._set_status(last_error=text)

    # -- the loop -------------------------------------------------------------------------------

    async def _main(self) -> None:
        reader = asyncio.ensure_future(self._reader())
        backoff = self.backoff_initial_s
        try:
            while not self._stopping.is_set():
                transport = self._factory()
                connected = False
                try:
                    await self._until_stopped(self._connect(transport), self.connect_timeout_s)
                    connected = not self._stopping.is_set()
                    if connected:
                        backoff = self.backoff_initial_s
                        await self._drive(transport)
                except HubError as err:
                    if not self._stopping.is_set():
                        self._error(str(err))
                    if isinstance(err, self.give_up_on):
                        await self._close(transport)
                        self._event('error', f'giving up: {err}')
                        break
                except asyncio.TimeoutError:
                    self._error(f'connecting took longer than {self.connect_timeout_s:g} s')
                except Exception as err:  # a bug or an unexpected transport error: reconnect, brake first
                    self._error(f'unexpected error: {err!r}')
                if self._stopping.is_set():
                    self._brake_acknowledged = await self._final_brake(transport) if self._status.connected else False
                    await self._close(transport)
                    break
                await self._close(transport)
                self._event('warn', f'reconnecting in {backoff:g} s')
                try:
                    await asyncio.wait_for(self._stopping.wait(), backoff)
                except asyncio.TimeoutError:
                    pass
                backoff = min(backoff * 2, self.backoff_max_s)
        finally:
            reader.cancel()

    async def _until_stopped(self, coro, timeout_s: float) -> None:
        """Run `coro` unless stop is requested first (then cancel it)."""
        task = asyncio.ensure_future(coro)
        stopper = asyncio.ensure_future(self._stopping.wait())
        try:
            done, _ = await asyncio.wait({task, stopper}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                task.result()
                return
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
            if not done:
                raise asyncio.TimeoutError
        finally:
            stopper.cancel()

    async def _connect(self, transport: Transport) -> None:
        self._generation += 1
        generation = self._generation
        self._link_lost_reason = None
        self._attached.clear()
        self._announced: dict[int, int] = {}  # port -> io type, from this connection's attached-I/O messages
        self._announced_at = 0.0
        self._parser.reset()
        while not self._inbox.empty():
            self._inbox.get_nowait()
        loop = asyncio.get_running_loop()

        def on_notify(data: bytes) -> None:  # only enqueue, from whatever thread bleak uses
            if generation == self._generation:
                loop.call_soon_threadsafe(self._inbox.put_nowait, bytes(data))

        def on_disconnect() -> None:
            loop.call_soon_threadsafe(self._lose_link, generation, 'connection lost')

        info = await transport.connect(on_notify, on_disconnect)
        self.connections += 1
        self._set_status(connected=True, name=info.name, address=info.address, kind=info.kind,
                         rssi=info.rssi, applied_power=0, braked=True, last_error='')
        self._event('info', f'connected to {info.name} [{info.address}] {kind_name(info.kind)}')
        self._applied = None
        await self._write_power(transport, POWER_BRAKE)  # the first bytes of every connection
        deadline = self._clock() + self.attach_timeout_s
        while not self._attached.is_set():
            self._check_link()
            self._check_port(info.name)
            if self._clock() > deadline:
                raise HubError(f'no motor attached to port {port_name(self.port)} of {info.name} '
                               f'within {self.attach_timeout_s:g} s')
            try:
                await asyncio.wait_for(self._attached.wait(), self.tick_s)
            except asyncio.TimeoutError:
                pass
        for prop in (HubProperty.BATTERY_VOLTAGE, HubProperty.RSSI):
            await self._write(transport, HubPropertyMessage(prop, HubPropertyOperation.ENABLE_UPDATES))
        for alert in ALERTS:
            await self._write(transport, HubAlertMessage(alert, AlertOperation.ENABLE_UPDATES))
        self._set_status(ready=True)
        self._event('info', f'motor on port {port_name(self.port)} ready')

    def _check_port(self, hub_name: str) -> None:
        """NoMotorError when the hub's announcements show that the port has no motor."""
        where = f'port {port_name(self.port)} of {hub_name}'
        io_type = self._announced.get(self.port)
        if io_type is not None and io_type not in POWER_OUTPUT_TYPES:
            raise NoMotorError(f'no motor attached to {where}: it has device type 0x{io_type:04x}')
        if io_type is None and self._announced and self._clock() - self._announced_at > self.attach_settle_s:
            listed = ', '.join(port_name(p) for p in sorted(self._announced))
            raise NoMotorError(f'no motor attached to {where}: the hub announced devices on {listed} only')

    def _lose_link(self, generation: int, reason: str) -> None:
        if generation == self._generation and self._link_lost_reason is None:
            self._link_lost_reason = reason
            self._wake.set()

    def _check_link(self) -> None:
        if self._link_lost_reason is not None:
            raise _LinkLost(self._link_lost_reason)

    async def _write(self, transport: Transport, msg: Message) -> None:
        self._check_link()
        data = bytes(msg)
        self._trace('>', data)
        await transport.write(data)

    async def _write_power(self, transport: Transport, value: int, stamp_ns: int = 0) -> None:
        msg = (WriteDirectModeDataMessage.brake(self.port) if value == POWER_BRAKE
               else WriteDirectModeDataMessage.power(self.port, value))
        self._ack.clear()
        await self._write(transport, msg)
        self._applied = value
        changes: dict = {'applied_power': 0 if value == POWER_BRAKE else value, 'braked': value == POWER_BRAKE}
        if stamp_ns:
            changes['latency_ms'] = (self._wall_ns() - stamp_ns) / 1e6
        self._set_status(**changes)

    def _target(self) -> tuple[int, int, tuple[str, str] | None]:
        """(power byte to apply, source stamp, dead-man event to log) from the newest command.

        The event is logged by the caller after the write: a log line takes time (docs/performance.md),
        and the brake should not wait for it.
        """
        with self._lock:
            desired, inhibited = self._desired, self._inhibited
        if inhibited:
            return POWER_BRAKE, 0, None
        if desired is None or self._clock() - desired[3] > self.deadman_timeout_s:
            event = None
            if not self._deadman and desired is not None:
                event = ('warn', f'dead-man: no train/speed_command for {self.deadman_timeout_s:g} s: brake')
            self._deadman = desired is not None
            return POWER_BRAKE, 0, event
        event = None
        if self._deadman:
            event = ('info', 'train/speed_command again: dead-man released')
            self._deadman = False
        power, brake, stamp, _ = desired
        return (POWER_BRAKE if brake else power), stamp, event

    async def _drive(self, transport: Transport) -> None:
        while not self._stopping.is_set():
            self._check_link()
            value, stamp, event = self._target()
            if value != self._applied:
                await self._write_power(transport, value, stamp)
            if event is not None:
                self._event(*event)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.tick_s)
            except asyncio.TimeoutError:
                pass

    async def _final_brake(self, transport: Transport) -> bool:
        try:
            self._check_link()
            await self._write_power(transport, POWER_BRAKE)
            await asyncio.wait_for(self._ack.wait(), self.ack_timeout_s)
        except asyncio.TimeoutError:
            self._error(f'brake written, no acknowledgement within {self.ack_timeout_s:g} s')
            return False
        except HubError as err:
            self._error(f'cannot brake before disconnecting: {err}')
            return False
        self._event('info', 'brake acknowledged by the hub')
        return True

    async def _close(self, transport: Transport) -> None:
        self._generation += 1  # late callbacks of this connection are ignored
        try:
            await asyncio.wait_for(transport.disconnect(), 5.0)
        except (asyncio.TimeoutError, Exception):
            pass
        if self._status.connected:
            self._event('warn', f'disconnected from {self._status.name}')
        self._set_status(connected=False, ready=False, applied_power=0, braked=True)

    # -- inbound --------------------------------------------------------------------------------

    async def _reader(self) -> None:
        while True:
            data = await self._inbox.get()
            self._trace('<', data)
            for item in self._parser.feed(data):
                try:
                    self._handle(item)
                except Exception as err:  # never let one message stop the reader
                    self._event('error', f'cannot handle {item!r}: {err!r}')

    def _handle(self, item: Message | Lwp3DecodeError) -> None:
        if isinstance(item, Lwp3DecodeError):
            self._event('warn', f'bad bytes from the hub: {item}')
        elif isinstance(item, PortOutputFeedbackMessage):
            if item.for_port(self.port) is not None:
                self._ack.set()
        elif isinstance(item, AttachedIOMessage):
            self._announced[item.port] = item.io_type
            self._announced_at = self._clock()
            if item.port != self.port:
                return
            if item.io_type in POWER_OUTPUT_TYPES:
                self._attached.set()
            else:
                self._error(f'port {port_name(self.port)} has device type 0x{item.io_type:04x}, not a motor')
        elif isinstance(item, DetachedIOMessage) and item.port == self.port:
            self._announced.pop(item.port, None)
            self._attached.clear()
            self._error(f'motor detached from port {port_name(self.port)}')
        elif isinstance(item, HubPropertyMessage) and item.op == HubPropertyOperation.UPDATE:
            if item.prop == HubProperty.BATTERY_VOLTAGE:
                self._set_status(battery_pct=int(item.value))
            elif item.prop == HubProperty.RSSI:
                self._set_status(rssi=int(item.value))
            elif item.prop == HubProperty.BUTTON and item.value:
                self._event('info', 'hub button pressed')
        elif isinstance(item, HubAlertMessage) and item.op == AlertOperation.UPDATE:
            level = 'warn' if item.status == AlertStatus.ALERT else 'info'
            self._event(level, f'hub alert {item.alert.name}: {item.status.name}')
        elif isinstance(item, GenericErrorMessage):
            self._error(item.describe())
        elif isinstance(item, HubActionMessage) and item.action in LEAVING:
            self._error(LEAVING[item.action])
            self._lose_link(self._generation, LEAVING[item.action])
