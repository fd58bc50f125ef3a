"""Board descriptions: the data files in ``firmware_templates/boards/*.toml``.

A board file gives the core, FPU, clock, memory map, stack size, output channel and how
the board is reached: a QEMU machine (emulated boards: ``kws-export run``/``bench``) or a
pyOCD target (real boards: ``kws-export flash``). Everything the firmware templates need
that is a *decision* (compiler flags, UART register writes, baud-rate divisors, vector
table alignment) is computed here, in Python, so the templates hold only loops.

No torch import (the firmware path needs none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from firmware_templates import template_root
from nanomamba.errors import KwsError

try:  # Python 3.11+
    import tomllib as _toml
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as _toml  # type: ignore[no-redef]

#: Folder of the board files shipped with the package.
BOARDS_DIR = template_root() / "boards"

#: Cores the firmware builds for -> (ARM architecture, has DSP extension).
CORES = {
    "cortex-m0plus": ("armv6-m", False),
    "cortex-m3": ("armv7-m", False),
    "cortex-m4": ("armv7e-m", True),
    "cortex-m7": ("armv7e-m", True),
    "cortex-m33": ("armv8-m.main", True),
    "cortex-m55": ("armv8.1-m.main", True),
}
#: Most external interrupts an architecture's NVIC can have (the vector table holds
#: 16 + irq_count words): Armv6-M ARM (DDI 0419) B3.4: up to 32; Armv7-M ARM (DDI 0403)
#: B3.4: up to 496; Armv8-M ARM (DDI 0553) B11 / ICTR.INTLINESNUM: up to 480.
MAX_IRQS = {"armv6-m": 32, "armv7-m": 496, "armv7e-m": 496,
            "armv8-m.main": 480, "armv8.1-m.main": 480}
#: Output channels and the app templates that implement them.
OUTPUTS = ("semihosting", "uart")
#: UART drivers (firmware_templates/app/kws_io_uart_<driver>.c.j2, or kws_io_null.c.j2).
UART_DRIVERS = ("stm32", "nrf52", "cmsdk", "null")


class BoardError(KwsError):
    """Unknown board name, or a malformed board file."""


@dataclass(frozen=True)
class MemoryRegion:
    """One memory region of a board: ``origin`` and ``size`` in bytes."""

    origin: int
    size: int

    @property
    def end(self) -> int:
        """First address after the region."""
        return self.origin + self.size

    def contains(self, addr: int, size: int = 1) -> bool:
        """True when ``[addr, addr + size)`` lies inside the region."""
        return self.origin <= addr and addr + size <= self.end


@dataclass(frozen=True)
class Board:
    """A board as read from its TOML file (see ``docs/FIRMWARE.md``: adding a board).

    Attributes:
        name: board id used on the command line (the file's stem).
        description: one line for listings.
        core: GCC ``-mcpu`` name (a key of :data:`CORES`).
        fpu: GCC ``-mfpu`` name, ``""`` for no FPU (soft float), ``"auto"`` when ``-mcpu``
            implies it (Cortex-M55).
        clock_hz: processor clock feeding SysTick, Hz (QEMU: as the machine models it;
            real boards: the reset clock the firmware keeps).
        irq_count: external interrupt entries in the vector table.
        stack_size: bytes reserved for the main stack.
        output: ``"semihosting"`` (QEMU) or ``"uart"`` (real boards, build-only targets).
        flash, ram: memory regions (flash holds the image; on QEMU it is RAM loaded by
            ``-kernel``).
        qemu_machine: ``qemu-system-arm -machine`` name, or None for real boards.
        pyocd_target: pyOCD target type, or None.
        pyocd_pack: CMSIS-Pack name to install when the target is not built into pyOCD.
        uart: the ``[uart]`` table (driver parameters), or None.
        path: the board file.
    """

    name: str
    description: str
    core: str
    fpu: str
    clock_hz: int
    irq_count: int
    stack_size: int
    output: str
    flash: MemoryRegion
    ram: MemoryRegion
    qemu_machine: str | None
    pyocd_target: str | None
    pyocd_pack: str | None
    uart: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def emulated(self) -> bool:
        """True for boards ``kws-export run``/``bench`` can run in qemu-system-arm."""
        return self.qemu_machine is not None

    @property
    def flashable(self) -> bool:
        """True for real boards ``kws-export flash`` can program through pyOCD."""
        return self.pyocd_target is not None

    @property
    def kind(self) -> str:
        """``"qemu"``, ``"pyocd"`` or ``"build-only"``."""
        return "qemu" if self.emulated else "pyocd" if self.flashable else "build-only"

    @property
    def has_dsp(self) -> bool:
        """True when the core has the DSP extension (SSAT, SMLAD, ...)."""
        return CORES[self.core][1]

    def cflags(self) -> list[str]:
        """Target flags for arm-none-eabi-gcc: ``-mcpu``, ``-mthumb``, FPU and float ABI.

        A core with an FPU uses the hard-float ABI (the matching newlib multilib exists for
        every core here: ``arm-none-eabi-gcc -print-multi-lib``).
        """
        flags = [f"-mcpu={self.core}", "-mthumb"]
        if self.fpu == "":
            flags.append("-mfloat-abi=soft")
        elif self.fpu == "auto":
            flags.append("-mfloat-abi=hard")
        else:
            flags += [f"-mfpu={self.fpu}", "-mfloat-abi=hard"]
        return flags

    def vector_align(self) -> int:
        """Vector table alignment in bytes: the table size rounded up to a power of two,
        at least 128 (VTOR's alignment rule, Armv7-M ARM B3.2.5)."""
        size = 4 * (16 + self.irq_count)
        return max(128, 1 << math.ceil(math.log2(size)))


def board_names() -> list[str]:
    """Names of the shipped boards, sorted."""
    return sorted(p.stem for p in BOARDS_DIR.glob("*.toml"))


def _need(table: dict, key: str, kind, where: str):
    if key not in table:
        raise BoardError(f"{where}: missing '{key}'")
    value = table[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BoardError(f"{where}: '{key}' must be {getattr(kind, '__name__', kind)}, "
                         f"not {value!r}")
    return value


def _region(data: dict, name: str, where: str) -> MemoryRegion:
    mem = data.get("memory", {}).get(name)
    if not isinstance(mem, dict):
        raise BoardError(f"{where}: missing [memory.{name}] table")
    origin = _need(mem, "origin", int, f"{where} [memory.{name}]")
    size = _need(mem, "size", int, f"{where} [memory.{name}]")
    if origin < 0 or size <= 0 or origin + size > 1 << 32:
        raise BoardError(f"{where}: [memory.{name}] origin/size outside the 32-bit address space")
    return MemoryRegion(origin, size)


def parse_board(path: Path) -> Board:
    """Read and validate one board file.

    Args:
        path: a ``.toml`` board description.
    Returns:
        the :class:`Board`.
    Raises:
        BoardError: unreadable file, missing or ill-typed field, unknown core/output/UART
            driver, ``irq_count`` outside 1..:data:`MAX_IRQS` of the core's architecture,
            ``clock_hz`` not positive, overlapping memory regions, a stack that does not
            fit in RAM. (The name-matches-file-stem rule is :func:`load_board`'s: a
            build folder's copy ``BUILD/board.toml`` keeps its board's name.)
    """
    where = str(path)
    try:
        data = _toml.loads(path.read_text())
    except (OSError, _toml.TOMLDecodeError) as err:
        raise BoardError(f"{where}: not a readable TOML board file ({err})") from None
    core = _need(data, "core", str, where)
    if core not in CORES:
        raise BoardError(f"{where}: unknown core '{core}' (known: {', '.join(CORES)})")
    output = _need(data, "output", str, where)
    if output not in OUTPUTS:
        raise BoardError(f"{where}: unknown output '{output}' (known: {', '.join(OUTPUTS)})")
    flash, ram = _region(data, "flash", where), _region(data, "ram", where)
    if flash.origin < ram.end and ram.origin < flash.end:
        raise BoardError(f"{where}: [memory.flash] and [memory.ram] overlap")
    stack = _need(data, "stack_size", int, where)
    if stack <= 0 or stack % 8 or stack >= ram.size:
        raise BoardError(f"{where}: stack_size {stack} must be a positive multiple of 8 "
                         f"smaller than RAM ({ram.size} bytes)")
    qemu = data.get("qemu", {}).get("machine")
    pyocd = data.get("pyocd", {})
    uart = data.get("uart") or {}
    if output == "uart":
        driver = uart.get("driver")
        if driver not in UART_DRIVERS:
            raise BoardError(f"{where}: [uart] driver must be one of {', '.join(UART_DRIVERS)}")
    if output == "semihosting" and not qemu:
        raise BoardError(f"{where}: semihosting output needs a [qemu] machine "
                         f"(a real board must use a UART)")
    irq_count = _need(data, "irq_count", int, where)
    limit = MAX_IRQS[CORES[core][0]]
    if not 1 <= irq_count <= limit:
        raise BoardError(f"{where}: irq_count {irq_count} must be 1..{limit} (external "
                         f"interrupts an {CORES[core][0]} NVIC can have)")
    clock_hz = _need(data, "clock_hz", int, where)
    if clock_hz <= 0:
        raise BoardError(f"{where}: clock_hz {clock_hz} must be a positive number of Hz")
    return Board(
        name=_need(data, "name", str, where),
        description=_need(data, "description", str, where),
        core=core,
        fpu=_need(data, "fpu", str, where),
        clock_hz=clock_hz,
        irq_count=irq_count,
        stack_size=stack,
        output=output,
        flash=flash,
        ram=ram,
        qemu_machine=qemu or None,
        pyocd_target=pyocd.get("target") or None,
        pyocd_pack=pyocd.get("pack") or None,
        uart=uart,
        path=path,
    )


def load_board(name: str) -> Board:
    """The board called ``name`` (a shipped board id, or a path to a ``.toml`` file).

    Raises:
        BoardError: unknown name (the message lists the known boards), no such ``.toml``
            file, a bad file, or a file whose ``name`` is not its file name's stem
            (``docs/FIRMWARE.md``: adding a board).
    """
    path = Path(name)
    if path.suffix == ".toml":
        if not path.is_file():
            raise BoardError(f"{path}: no such board file")
        board = parse_board(path)
        if board.name != path.stem:
            raise BoardError(f"{path}: name '{board.name}' does not match the file name "
                             f"(rename the file {board.name}.toml or set name = "
                             f"\"{path.stem}\")")
        return board
    candidate = BOARDS_DIR / f"{name}.toml"
    if not candidate.is_file():
        raise BoardError(f"unknown board '{name}' (known: {', '.join(board_names())}; "
                         f"or give a path to a board .toml file)")
    board = parse_board(candidate)
    if board.name != name:
        raise BoardError(f"{candidate}: name '{board.name}' does not match the file name")
    return board


# ---------------------------------------------------------------------------------------
# UART driver parameters (decisions for the kws_io_uart_*.c.j2 templates)
# ---------------------------------------------------------------------------------------

#: nRF52 UART BAUDRATE register values (nRF52840 Product Specification, UART.BAUDRATE).
NRF52_BAUDRATE = {9600: 0x00275000, 19200: 0x004EA000, 38400: 0x009D5000,
                  57600: 0x00EBF000, 115200: 0x01D7E000, 230400: 0x03AFB000,
                  460800: 0x075F7000, 921600: 0x0EBED000, 1000000: 0x10000000}


def _hex(v: int) -> str:
    return f"0x{v:08X}"


def uart_context(board: Board) -> dict:
    """Values the UART templates print, computed from the board's ``[uart]`` table.

    stm32: the ``init_bits`` set in order (RCC clock enables, power bits), the TX pin's MODER/AFR
    writes, and BRR = round(clock / baud) for a U(S)ART (oversampling by 16) or
    round(256 * clock / baud) for an LPUART (RM0351 sections 40.5.4, 41.4.4).
    nrf52: the BAUDRATE register value. cmsdk: BAUDDIV = clock // baud.

    Raises:
        BoardError: missing parameters, an unsupported baud rate, a divisor out of range.
    """
    u = dict(board.uart)
    where = f"{board.path} [uart]"
    driver = u.get("driver")
    if driver == "stm32":
        base = _need(u, "base", int, where)
        baud = _need(u, "baud", int, where)
        clock = _need(u, "clock_hz", int, where)
        gpio = _need(u, "gpio_base", int, where)
        pin = _need(u, "tx_pin", int, where)
        af = _need(u, "tx_af", int, where)
        kind = u.get("kind", "usart")
        if kind == "lpuart":
            brr = (256 * clock + baud // 2) // baud
            if not 0x300 <= brr < 1 << 20:
                raise BoardError(f"{where}: LPUART BRR {brr} out of range for {baud} baud")
        elif kind == "usart":
            brr = (clock + baud // 2) // baud
            if not 16 <= brr < 1 << 16:
                raise BoardError(f"{where}: USART BRR {brr} out of range for {baud} baud")
        else:
            raise BoardError(f"{where}: kind must be 'usart' or 'lpuart'")
        enables = []
        for item in u.get("init_bits", []):
            if (len(item) != 3 or not isinstance(item[0], int) or not isinstance(item[1], int)
                    or not 0 <= item[1] < 32):
                raise BoardError(f"{where}: init_bits entries are [address, bit 0-31, text]")
            enables.append({"address": _hex(item[0]), "mask": _hex(1 << item[1]),
                            "comment": str(item[2]).replace("*/", "")})
        afr_off = 0x20 if pin < 8 else 0x24
        pin_writes = [
            {"address": _hex(gpio + 0x00), "clear_mask": _hex(3 << (2 * pin)),
             "mask": _hex(2 << (2 * pin)), "comment": f"MODER{pin} = alternate function"},
            {"address": _hex(gpio + afr_off), "clear_mask": _hex(0xF << (4 * (pin % 8))),
             "mask": _hex(af << (4 * (pin % 8))), "comment": f"AFR: pin {pin} = AF{af}"},
        ]
        return {"driver": driver, "kind": kind, "base": _hex(base), "baud": baud,
                "clock_hz": clock, "brr": brr, "tx_pin": pin, "tx_af": af,
                "enable_writes": enables, "pin_writes": pin_writes}
    if driver == "nrf52":
        baud = _need(u, "baud", int, where)
        if baud not in NRF52_BAUDRATE:
            raise BoardError(f"{where}: baud {baud} not supported by the nRF52 UART "
                             f"(one of {', '.join(map(str, NRF52_BAUDRATE))})")
        return {"driver": driver, "base": _hex(_need(u, "base", int, where)), "baud": baud,
                "tx_pin": _need(u, "tx_pin", int, where),
                "baudrate_reg": _hex(NRF52_BAUDRATE[baud])}
    if driver == "cmsdk":
        baud = _need(u, "baud", int, where)
        clock = _need(u, "clock_hz", int, where)
        div = clock // baud
        if div < 16:
            raise BoardError(f"{where}: CMSDK UART BAUDDIV {div} < 16 for {baud} baud")
        return {"driver": driver, "base": _hex(_need(u, "base", int, where)), "baud": baud,
                "clock_hz": clock, "bauddiv": div}
    return {"driver": "null"}
