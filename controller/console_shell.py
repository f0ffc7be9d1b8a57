"""Controller layer: the interactive shells of the console and their prompt.

:func:`run_console` opens IPython (or the stdlib ``code`` console as fallback) on the namespace of
:func:`controller.console.make_namespace`; the prompt shows the group, the number of
satellites, the global state and the current run.
"""

from __future__ import annotations

import code
import logging
import re
import sys
from collections.abc import Iterable
from typing import Any

from constellation.terminal import colour_wanted
from controller.config import ControllerConfig
from controller.console_output import ONE_LINE_ERRORS, one_line
from controller.controller import Controller
from controller.group import GroupView, colour_state

log = logging.getLogger("constellation.console")

__all__ = ["banner_text", "prompt_text", "run_console"]

_ANSI = re.compile(r"(\033\[[0-9;]*m)")


def prompt_text(view: GroupView) -> tuple[str, int, str, str]:
    """(group, number of satellites, global state, run id) for the prompt."""
    count, state = view.summary()
    return view.ctl.group, count, state, view.current_run() if state == "RUN" else ""


_BANNER = """Constellation controller console, group {group}
  commands: constellation.launch(), {examples}
  status(): table of satellites   wait("ORBIT"): wait for a state   cfg: the configuration
  Leaving the console does not affect the satellites.
"""


def banner_text(group: str, names: Iterable[str]) -> str:
    """The console banner; its examples use the first satellite present (placeholders if none)."""
    first = min(names, key=str.lower, default=None)
    type_name, _, name = (first or "<Type>.<Name>").partition(".")
    if first is None or name.isidentifier():
        one = f"constellation.{type_name}.{name}.launch()"
    else:  # e.g. a name starting with a digit: no attribute syntax
        one = f'constellation["{first}"].launch()'
    return _BANNER.format(group=group, examples=f"constellation.{type_name}.launch(), {one}")


def run_console(
    controller: Controller,
    view: GroupView,
    config: ControllerConfig | None,
    use_ipython: bool = True,
) -> None:
    """Open the interactive console until the user leaves it (the controller stays open)."""
    from controller.console import make_namespace  # the namespace module re-exports this one

    namespace = make_namespace(controller, view, config)
    session = namespace["constellation"]._session  # IPython clears the namespace
    banner = banner_text(controller.group, view.names)
    if use_ipython:
        try:
            import IPython  # noqa: F401
        except ImportError as exc:
            log.debug("IPython not available (%s): using the stdlib console", exc)
            use_ipython = False
    try:
        if use_ipython:
            _run_ipython(namespace, view, banner)
        else:
            _run_code(namespace, view, banner)
    finally:
        session.close()


def _run_ipython(namespace: dict[str, Any], view: GroupView, banner: str) -> None:
    from IPython.terminal.prompts import Prompts
    from pygments.token import Token
    from traitlets.config import Config

    state_token = Token.Prompt.State
    _STATE_TOKENS = {
        name: getattr(state_token, name)
        for name in ("NEW", "INIT", "ORBIT", "RUN", "SAFE", "ERROR", "DEAD", "NONE")
    }

    class GroupPrompts(Prompts):
        def __init__(self, shell: Any) -> None:
            super().__init__(shell)
            view.add_listener(self._refresh)

        def _refresh(self) -> None:
            app = getattr(self.shell, "pt_app", None)
            if app is None:
                return
            try:
                from prompt_toolkit.formatted_text import PygmentsTokens

                app.message = PygmentsTokens(self.in_prompt_tokens())
                app.app.invalidate()
            except Exception:  # a failed redraw must not break the console
                log.debug("prompt refresh failed", exc_info=True)

        def in_prompt_tokens(self) -> list[tuple[Any, str]]:
            group, count, state, run_id = prompt_text(view)
            base = state.lstrip("~")
            tokens = [
                (Token.Prompt.Group, f"{group} "),
                (Token.Prompt.Count, f"({count}) "),
                (_STATE_TOKENS.get(base, state_token.Transitional), state),
            ]
            if run_id:
                tokens.append((Token.Prompt.Run, f" {run_id}"))
            tokens.append((Token.Prompt, " > "))
            return tokens

        def continuation_prompt_tokens(self, width: int | None = None, **_: Any) -> list[Any]:
            width = self._width() if width is None else width  # type: ignore[no-untyped-call]
            return [(Token.Prompt, " " * max(0, width - 4) + "... ")]

        def out_prompt_tokens(self) -> list[tuple[Any, str]]:
            return []

    c = Config()
    c.TerminalIPythonApp.display_banner = True
    c.TerminalInteractiveShell.banner1 = banner
    c.TerminalInteractiveShell.banner2 = ""
    c.TerminalInteractiveShell.prompts_class = GroupPrompts
    c.TerminalInteractiveShell.confirm_exit = False
    c.TerminalInteractiveShell.term_title = False
    c.TerminalInteractiveShell.highlighting_style_overrides = {
        Token.Prompt.Group: "bold",
        Token.Prompt.Count: "",
        Token.Prompt.Run: "#ansigreen",
        state_token.NEW: "#ansiwhite",
        state_token.INIT: "#ansicyan",
        state_token.ORBIT: "#ansiblue bold",
        state_token.RUN: "#ansigreen bold",
        state_token.SAFE: "#ansiyellow bold",
        state_token.ERROR: "#ansired bold",
        state_token.DEAD: "#ansired",
        state_token.Transitional: "bold",
    }
    c.Completer.use_jedi = False  # completion from dir(), i.e. from get_commands
    c.Completer.evaluation = "unsafe"  # allow attribute access on the proxies while completing
    from IPython.terminal.ipapp import TerminalIPythonApp
    from prompt_toolkit.patch_stdout import patch_stdout

    def show_one_line(shell: Any, etype: Any, value: BaseException, tb: Any, **_: Any) -> None:
        print(one_line(value), file=sys.stderr)

    app = TerminalIPythonApp.instance(config=c, user_ns=namespace)
    app.initialize(argv=[])
    app.shell.set_custom_exc(ONE_LINE_ERRORS, show_one_line)
    with patch_stdout(raw=True):  # notices from other threads print above the prompt
        app.start()


def _run_code(namespace: dict[str, Any], view: GroupView, banner: str) -> None:
    colour = colour_wanted(sys.stdout)

    class Prompt:
        def __str__(self) -> str:
            group, count, state, run_id = prompt_text(view)
            shown = colour_state(state, colour)
            if colour:  # readline must know which characters take no space
                shown = _ANSI.sub("\001\\1\002", shown)
            return f"{group} ({count}) {shown}{' ' + run_id if run_id else ''} > "

    try:
        import readline
        import rlcompleter

        readline.set_completer(rlcompleter.Completer(namespace).complete)
        readline.parse_and_bind("tab: complete")
    except ImportError as exc:  # e.g. a Python built without readline: no completion
        log.debug("readline not available (%s): no tab completion", exc)

    class Console(code.InteractiveConsole):
        def showtraceback(self) -> None:
            value = sys.exc_info()[1]
            if isinstance(value, ONE_LINE_ERRORS):
                self.write(one_line(value) + "\n")
            else:
                super().showtraceback()

    sys.ps1, sys.ps2 = Prompt(), "... "
    try:
        Console(namespace).interact(banner=banner, exitmsg="")
    finally:
        del sys.ps1, sys.ps2
