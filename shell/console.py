"""The terminal side of a command: where output goes, how questions are asked, how progress is shown.

Injected into every handler, so tests pass string buffers and scripted answers, and the REPL passes a
reader that prompts through prompt_toolkit. Confirmation fails closed: only yes/y applies, end of input
is a no, and anything else asks again at a terminal and is a no without one.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, TextIO

from vgpu.errors import Cancelled

from vgpu.escape import shown

from .errors import OutputFailed

YES = ("yes", "y")
NO = ("no", "n")
PLAIN_EVERY = 5  # seconds between "still waiting" lines when the output is not a terminal
SAY_BATCH = 500  # lines written at once by say_lines

if TYPE_CHECKING:  # a type only: defining a Protocol costs start-up time every one-shot command would pay
    from typing import Protocol

    class Lines(Protocol):
        """Where answers are read from: stdin, or a script's numbered lines (shell.script)."""

        def readline(self) -> str: ...

        def isatty(self) -> bool: ...


@contextmanager
def _output_failures() -> Iterator[None]:
    try:
        yield
    except BrokenPipeError:
        raise  # the reader went away (| head): shell.main ends quietly, as cat does
    except OSError as error:
        raise OutputFailed(error.strerror or str(error)) from error


class CheckedOutput:
    """Standard output whose write failures say they are ours: an OSError here becomes OutputFailed, so the
    runner can tell "the output could not be written" from a failure of the database or the host."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        with _output_failures():
            return self.stream.write(text)

    def flush(self) -> None:
        with _output_failures():
            self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)  # isatty, fileno, encoding: the stream's own


# Where the output's encoding lacks ✓ and ⚠ (a latin-1 or ASCII locale), "replace" would print ?, which is
# the product's own "unknown" (? Running config unknown). One ASCII character each keeps table columns aligned.
ASCII_SYMBOLS = {"✓": "+", "⚠": "!"}
_ASCII_TABLE = str.maketrans(ASCII_SYMBOLS)


class AsciiSymbols:
    """A stream whose writes have ✓ and ⚠ spelled in ASCII (see ASCII_SYMBOLS)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(text.translate(_ASCII_TABLE))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)  # flush, isatty, fileno, encoding: the stream's own


def with_symbols_it_can_encode(stream: Any) -> Any:
    """``stream`` itself when its encoding has ✓ and ⚠ (UTF-8 output stays byte for byte), else AsciiSymbols."""
    try:
        "".join(ASCII_SYMBOLS).encode(getattr(stream, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return AsciiSymbols(stream)
    return stream


class StdinReader:
    """Reads answers from stdin (or a script's lines); when it is not a terminal, echoes them so transcripts
    read naturally."""

    def __init__(self, out: TextIO, source: Lines | None) -> None:
        self.out = out
        self.source = source  # None: stdin is closed (<&-)

    @property
    def at_terminal(self) -> bool:
        return self.source is not None and self.source.isatty()

    def __call__(self, prompt: str) -> str | None:
        self.out.write(prompt)
        self.out.flush()
        line = self.source.readline() if self.source is not None else ""  # stdin closed: end of input
        if not line:
            self.out.write("\n")
            return None
        if not self.at_terminal:
            self.out.write(line if line.endswith("\n") else line + "\n")
        return line.rstrip("\n")


def stdin_reader(out: TextIO, stdin: Lines | None = None) -> StdinReader:
    return StdinReader(out, stdin or sys.stdin)


def _unclear_answer(answer: str) -> Cancelled:
    shown_answer = repr(answer.strip()) if answer.strip() else "an empty answer"
    return Cancelled(f"Cancelled: {shown_answer} is neither yes nor no (without a terminal the question is not asked "
                     "again); nothing was changed.")


def terminal_password(prompt: str) -> str | None:
    """A password typed at the process's controlling terminal, not echoed; None when there is none.

    Never stdin: a password must not come from a pipe, and nothing typed or piped for a confirmation can
    become one (``echo yes | vgpu-admin ...`` once sent "yes" to the host as root's password). Ctrl-D at the
    prompt cancels the command; Ctrl-C interrupts it as anywhere else.
    """
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None  # no controlling terminal: cron, a service, a pipeline started without one
    import termios

    with open(fd, "r+b", buffering=0) as tty:
        try:
            saved = termios.tcgetattr(fd)
        except termios.error:
            return None
        quiet = list(saved)
        quiet[3] &= ~termios.ECHO  # lflags
        tty.write(prompt.encode("utf-8", "replace"))
        termios.tcsetattr(fd, termios.TCSAFLUSH, quiet)
        try:
            typed = b""
            while not typed.endswith(b"\n"):
                chunk = os.read(fd, 1024)
                if not chunk:
                    raise Cancelled("No password was typed; nothing was changed.")
                typed += chunk
        finally:
            termios.tcsetattr(fd, termios.TCSAFLUSH, saved)
            tty.write(b"\n")
    return typed[:-1].decode("utf-8", "replace")


class Console:
    def __init__(
        self,
        out: TextIO,
        err: TextIO,
        read_line: Callable[[str], str | None],
        *,
        interactive: bool = False,
        read_secret: Callable[[str], str | None] | None = None,
    ) -> None:
        self.out = out
        self.err = err
        self.read_line = read_line
        self.interactive = interactive
        # Asks for a password at a terminal; None (or a reader answering None): there is no terminal to ask at.
        self.read_secret = read_secret
        self.unclear_answers = 0  # a script stops after one (shell.script)
        self._progress_open = False
        self._shown_at: dict[tuple[str, str], int] = {}  # (VM, step) → the last "still waiting" line, in PLAIN_EVERYs

    @classmethod
    def standard(cls) -> "Console":
        for stream in (sys.stdout, sys.stderr):  # a non-UTF-8 locale shows ? for what it lacks rather than failing
            if hasattr(stream, "reconfigure"):
                stream.reconfigure(errors="replace")
        interactive = sys.stdin is not None and sys.stdin.isatty() and sys.stderr.isatty()
        out: Any = CheckedOutput(with_symbols_it_can_encode(sys.stdout))  # a TextIO in all but name
        return cls(out, with_symbols_it_can_encode(sys.stderr), stdin_reader(out), interactive=interactive,
                   read_secret=terminal_password)

    def say(self, text: str = "") -> None:
        self._end_progress()
        self.out.write(text + "\n")
        self.out.flush()

    def say_lines(self, lines: Iterable[str]) -> None:
        """Write lines as they come (a report of many VMs is never held as one text), a batch at a time."""
        self._end_progress()
        batch: list[str] = []
        for line in lines:
            batch.append(line)
            if len(batch) == SAY_BATCH:
                self.out.write("\n".join(batch) + "\n")
                batch.clear()
        if batch:
            self.out.write("\n".join(batch) + "\n")
        self.out.flush()

    def error(self, text: str) -> None:
        """One line on stderr. Errors quote names and values from the host and the database, so whatever in
        the line does not print is escaped: it cannot move the cursor, or end the line and fake another."""
        self._end_progress()
        self.err.write(shown(text) + "\n")
        self.err.flush()

    def confirm(self, question: str) -> bool:
        """Ask until the answer is yes or no; end of input (or Ctrl-D) means no. An unclear answer is asked
        again only at a terminal: from a pipe or a file, the next line is not a second try but the script's
        next command, so the unclear answer cancels (raises Cancelled) and nothing more is read."""
        while True:
            try:
                answer = self.read_line(question)
            except KeyboardInterrupt:  # Ctrl-C at the question is a no, not an interrupted change
                self.out.write("\n")
                return False
            if answer is None:
                return False
            word = answer.strip().lower()
            if word in YES:
                return True
            if word in NO:
                return False
            if not self._can_ask_again():
                self.unclear_answers += 1
                raise _unclear_answer(answer)
            self.out.write("Please answer yes or no.\n")

    def _can_ask_again(self) -> bool:
        # A reader that does not say where it reads is the vgpu> shell's prompt, at a terminal.
        return getattr(self.read_line, "at_terminal", True)

    def progress(self, event) -> None:
        """Show a lifecycle progress event on stderr: one updating line at a terminal; else one line per step,
        and a "still waiting" line every PLAIN_EVERY seconds (a log or a pipe still shows the command lives)."""
        message = shown(event.message)  # it may quote the host's own words
        text = message
        if event.elapsed:
            text += f": {event.elapsed:.0f} s" + (f" of {event.limit:g} s" if event.limit else "")
        if self.interactive:
            self.err.write(f"\r\033[K{text}")
            self._progress_open = True
        elif not event.elapsed:
            self._shown_at.pop((event.vm_uuid, event.step), None)
            self.err.write(text + "\n")
        else:
            key, period = (event.vm_uuid, event.step), int(event.elapsed // PLAIN_EVERY)
            if period > self._shown_at.get(key, 0):
                self._shown_at[key] = period
                self.err.write(f"{message}: {period * PLAIN_EVERY} s" + (f" of {event.limit:g} s" if event.limit else "") + "\n")
        self.err.flush()

    def _end_progress(self) -> None:
        if self._progress_open:
            self.err.write("\n")
            self.err.flush()
            self._progress_open = False
