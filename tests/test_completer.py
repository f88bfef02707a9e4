"""The prompt_toolkit adapter, on Document objects: the engine's answers as Completions, off the input thread."""

from __future__ import annotations

import asyncio

from prompt_toolkit.completion import CompleteEvent, ThreadedCompleter
from prompt_toolkit.document import Document

from shell.completer import VgpuCompleter, threaded_completer
from shell.names import NameCache

from .namekit import CACHE, U1, U2, U4


def complete(text: str, cursor: int | None = None, names=lambda: CACHE):
    document = Document(text, len(text) if cursor is None else cursor)
    return list(VgpuCompleter(names).get_completions(document, CompleteEvent(completion_requested=True)))


def test_uuid_completion_carries_name_and_pool_beside_it():
    (found,) = complete("show-vm --vm-uuid=1111")
    assert found.text == U1
    assert found.start_position == -4
    assert found.display_text == U1
    assert found.display_meta_text == "web-1 · Pool A"


def test_a_name_completes_to_the_uuid_replacing_the_name():
    (found,) = complete("set-pool --vm-uuid=db-")
    assert (found.text, found.start_position) == (U2, -3)
    assert Document("set-pool --vm-uuid=db-").text[: found.start_position] + found.text == f"set-pool --vm-uuid={U2}"


def test_only_the_text_before_the_cursor_counts():
    text = "set-pool --pool=B --vm-uuid=2222"
    cursor = len("set-pool --pool=")
    assert [c.text for c in complete(text, cursor)] == ["A", "B"]


def test_commands_at_the_start_of_the_line():
    assert [c.text for c in complete("rep")] == ["repair-vm", "repair-db"]
    assert complete("rep")[0].display_meta_text.startswith("Rewrite a VM's segment")


def test_unregistered_first_for_register_vm():
    assert complete("register-vm --vm-uuid=")[0].text == U4


def test_one_snapshot_per_request():
    calls = []

    def names():
        calls.append(1)
        return CACHE

    complete("show-vm --vm-uuid=", names=names)
    assert len(calls) == 1


def test_an_empty_snapshot_gives_no_names_but_still_commands():
    assert complete("show-vm --vm-uuid=", names=NameCache) == []
    assert [c.text for c in complete("exi", names=NameCache)] == ["exit"]


def test_the_shell_completer_runs_in_a_thread_with_the_same_answers():
    completer = threaded_completer(lambda: CACHE)
    assert isinstance(completer, ThreadedCompleter)

    async def collect():
        document = Document("show-vm --vm-uuid=")
        return [c.text async for c in completer.get_completions_async(document, CompleteEvent())]

    assert asyncio.run(collect()) == [c.text for c in complete("show-vm --vm-uuid=")]
