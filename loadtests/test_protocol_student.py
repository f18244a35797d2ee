"""The protocol students of the classroom benchmark (loadtests/protocol_student.py) ask for what
a browser asks for: the values of its slider's arrow presses, the widget states it sends, the
query string it writes, and the elements it holds for the server's references. The expected
values were read from a real Chromium's websocket frames on this app (Streamlit 1.67)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import streamlit
from google.protobuf.json_format import MessageToDict, ParseDict
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Element_pb2 import Element
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.Slider_pb2 import Slider

from loadtests.machine import outside_caches
from loadtests.protocol import (
    ABOUT_CACHES,
    TESTED_STREAMLIT,
    arrow_values,
    cache_mib,
    check_streamlit,
    js_number,
    static_files,
    url_value,
    widget_state,
    with_param,
)
from loadtests.protocol_student import MismatchDump, ProtocolStudent
from loadtests.session import Session

GAMMA = {"id": "$$ID-ae5b-lin_gamma", "format": "%0.2f", "dataType": "FLOAT", "default": [0.5],
         "max": 5.0, "step": 0.05, "type": "SLIDER", "queryParamKey": "lin_gamma"}  # fmt: skip
WIDTH = {"id": "$$ID-feac-width_m", "format": "%d", "default": [256.0], "min": 16.0,
         "max": 4096.0, "step": 16.0, "type": "SLIDER", "queryParamKey": "width_m"}  # fmt: skip
BETA = {"id": "$$ID-a4fc-shallow_relu_beta", "format": "%s", "default": [4.0], "max": 9.0,
        "step": 1.0, "options": ["0.001", "0.002", "0.005", "0.01", "0.02", "0.05", "0.1", "0.2",
                                 "0.5", "1.0"],
        "type": "SELECT_SLIDER", "queryParamKey": "shallow_relu_beta"}  # fmt: skip

#: Elements as the server sent them for the Linear duality page, and the state the browser sent
#: back for each in its next rerun.
RECORDED = [
    ({"selectbox": {"id": "$$ID-c5e6-device", "default": 0, "options": ["auto", "cpu"]}},
     {"stringValue": "auto"}),
    ({"numberInput": {"id": "$$ID-be05-seed", "format": "%d", "hasMin": True, "hasMax": True,
                      "default": 0.0, "step": 1.0, "max": 2147483647.0}},
     {"intValue": "0"}),
    ({"checkbox": {"id": "$$ID-d05c-lecture", "type": "TOGGLE"}}, {"boolValue": False}),
    ({"radio": {"id": "$$ID-4643-compute_on", "default": 0,
                "options": ["this machine", "Ray cluster"]}},
     {"stringValue": "this machine"}),
    ({"multiselect": {"id": "$$ID-1bbc-lin_scales", "default": [1, 3, 4],
                      "options": ["0.001", "0.01", "0.1", "0.3", "1.0", "2.0"]}},
     {"stringArrayValue": {"data": ["0.01", "0.3", "1.0"]}}),
    ({"slider": {"id": "$$ID-9c70-lin_lr", "format": "%s", "default": [5.0], "max": 8.0,
                 "step": 1.0, "type": "SELECT_SLIDER",
                 "options": ["0.001", "0.002", "0.005", "0.01", "0.02", "0.05", "0.1", "0.2",
                             "0.5"]}},
     {"stringArrayValue": {"data": ["0.05"]}}),
    ({"slider": GAMMA}, {"doubleArrayValue": {"data": [0.5]}}),
    ({"fileUploader": {"id": "$$ID-548d-load_linear_duality", "type": [".json"]}},
     {"fileUploaderStateValue": {}}),
]  # fmt: skip


def slider(spec: dict) -> Slider:
    return ParseDict(spec, Slider())


def test_arrow_presses_ask_for_the_values_a_browser_asked_for() -> None:
    assert arrow_values(slider(GAMMA), 0.5, 3) == [0.55, 0.6, 0.65]
    assert arrow_values(slider(WIDTH), 256.0, 2) == [272.0, 288.0]
    assert arrow_values(slider(BETA), 4.0, 2) == [5.0, 6.0]  # options 0.05, then 0.1


def test_the_lectures_gamma_moves_stay_on_the_step_grid_and_return() -> None:
    gamma = slider(GAMMA)
    up = arrow_values(gamma, 0.5, 10) + arrow_values(gamma, 1.0, 10)
    down = arrow_values(gamma, 1.5, -20)
    assert [js_number(v) for v in up[8:11]] == ["0.95", "1", "1.05"]  # no 0.6000000000000001
    assert down[-1] == 0.5 and len(down) == 20
    assert arrow_values(gamma, 4.95, 3) == [5.0, 5.0, 5.0]  # held at the slider's end


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.55, "0.55"), (272.0, "272"), (1e-7, "1e-7"), (5e-5, "0.00005"), (1e21, "1e+21")],
)
def test_numbers_are_written_as_javascript_writes_them(value: float, text: str) -> None:
    assert js_number(value) == text


@pytest.mark.parametrize(("element", "state"), RECORDED)
def test_widget_states_are_the_ones_the_browser_sent(element: dict, state: dict) -> None:
    built = widget_state(ParseDict(element, Element()), None)
    assert built is not None
    assert MessageToDict(built) == {"id": next(iter(element.values()))["id"], **state}


def test_the_browser_keeps_its_own_value_unless_the_script_sets_one() -> None:
    held = widget_state(ParseDict({"slider": GAMMA}, Element()), None)
    assert held is not None
    held.double_array_value.data[0] = 1.5
    again = widget_state(ParseDict({"slider": GAMMA}, Element()), held)
    assert again is held
    set_by_script = widget_state(
        ParseDict({"slider": {**GAMMA, "value": [2.0], "setValue": True}}, Element()), held
    )
    assert set_by_script is not None and list(set_by_script.double_array_value.data) == [2.0]


def test_elements_without_state_and_unknown_widgets() -> None:
    assert widget_state(ParseDict({"markdown": {"body": "text"}}, Element()), None) is None
    chart = {"bidiComponent": {"id": "$$ID-1-chart_x", "componentName": "c"}}
    assert widget_state(ParseDict(chart, Element()), None) is None
    with pytest.raises(ValueError, match="color_picker"):
        widget_state(ParseDict({"colorPicker": {"id": "$$ID-2-colour"}}, Element()), None)


def test_the_query_string_follows_the_moved_slider() -> None:
    gamma, beta = slider(GAMMA), slider(BETA)
    query = with_param("seed=1", "lin_gamma", url_value(gamma, 0.55))
    assert query == "lin_gamma=0.55&seed=1"  # as the browser sent it: keys sorted
    assert with_param(query, "lin_gamma", url_value(gamma, 0.5)) == "seed=1"  # default: removed
    assert url_value(beta, 5.0) == "0.05"


def cacheable(body: str) -> ForwardMsg:
    message = ForwardMsg(hash=f"h-{body}")
    message.metadata.cacheable = True
    message.delta.new_element.markdown.body = body
    return message


def finished() -> ForwardMsg:
    return ForwardMsg(script_finished=ForwardMsg.ScriptFinishedStatus.FINISHED_SUCCESSFULLY)


def test_references_are_read_from_held_elements_until_they_expire() -> None:
    session = Session(None, "http://host", "page", "")  # type: ignore[arg-type]
    session.max_age = 2
    original = cacheable("a chart")
    session._resolved(original, original.SerializeToString())
    reference = ForwardMsg(ref_hash=original.hash)
    reference.metadata.delta_path.extend([0, 3])
    resolved = session._resolved(reference, reference.SerializeToString())
    assert resolved.delta.new_element.markdown.body == "a chart"
    assert list(resolved.metadata.delta_path) == [0, 3]
    for _ in range(3):  # three runs without it: older than max_age, forgotten as the browser does
        session._handle(finished())
    assert original.hash not in session.cache
    session._resolved(reference, reference.SerializeToString())
    assert session.problems == [f"Cached ForwardMsg MISS [hash={original.hash}]"]


def test_answers_are_checked_against_the_others_for_the_same_value() -> None:
    answers: dict = {}
    first, second = ProtocolStudent("http://host", answers), ProtocolStudent("http://host", answers)
    for student in (first, second):
        student.link, student.path = "seed=0", "width"
    assert first.check("before", "chart at 512", 512.0) == "new"
    assert second.check("before", "chart at 512", 512.0) == "same"
    assert second.check("before", "another chart", 512.0) == "mismatch"
    assert second.check("before", "before", 272.0) == "unchanged"
    assert second.check("before", None, 272.0) == "no chart"


def test_the_static_files_named_by_streamlits_page() -> None:
    html = (Path(streamlit.__file__).parent / "static" / "index.html").read_text()
    files = static_files(html)
    assert any(f.startswith("static/js/index.") for f in files)
    assert any(f.endswith(".css") for f in files) and "favicon.png" in files


@pytest.mark.slow
def test_the_caches_bytes_are_read_from_the_real_about_box() -> None:
    """The sum the protocol students read from the sidebar's about box is the caches' bytes the
    server counts (each shown to 0.1 MiB)."""
    from streamlit.testing.v1 import AppTest

    from ui import runner
    from ui.export import cached_figure, clear_figures

    app = str(Path(__file__).resolve().parents[1] / "app.py")
    runner.result_cache().put(("about box test", 1), {"values": np.ones(300_000)})  # 2.3 MiB
    cached_figure(lambda name: go.Figure(go.Scatter(y=np.arange(20_000.0), name=name)), "about")
    at = AppTest.from_file(app, default_timeout=60).run()
    captions = [c.value for c in at.sidebar.caption if ABOUT_CACHES in c.value]
    assert len(captions) == 1
    counted = [cache.nbytes / 2**20 for cache in runner.serving_stats()[1]]
    assert cache_mib(captions[0]) == pytest.approx(sum(counted), abs=0.05 * len(counted))
    assert cache_mib(captions[0]) >= 2.3
    runner.clear_cache()
    clear_figures()


def test_memory_outside_the_caches_takes_the_last_reading_before_each_sample() -> None:
    memory = [(0.0, 500.0), (10.0, 520.0), (20.0, 560.0), (30.0, 600.0)]
    caches = [(5.0, 10.0), (19.0, 50.0), (20.0, 60.0)]
    assert outside_caches(memory, caches) == [(10.0, 510.0), (20.0, 500.0), (30.0, 540.0)]


class Socket:
    """A websocket that keeps what the client sends."""

    def __init__(self) -> None:
        self.sent: list[BackMsg] = []

    async def send(self, data: bytes) -> None:
        self.sent.append(BackMsg.FromString(data))


def full_run(value: int, *, started: bool = True, ends: bool = True) -> list[ForwardMsg]:
    """A full run drawing the chart ``chart_x`` at ``value``: its start, its chart, its end."""
    chart = ForwardMsg()
    chart.delta.new_element.bidi_component.id = "$$ID-1-chart_x"
    chart.delta.new_element.bidi_component.bytes = json.dumps({"value": value}).encode()
    start = ForwardMsg()
    start.new_session.main_script_hash = "main"
    return ([start] if started else []) + [chart] + ([finished()] if ends else [])


def status(run_on_save: bool) -> ForwardMsg:
    message = ForwardMsg()
    message.session_status_changed.run_on_save = run_on_save
    return message


def answer_of(session: Session) -> bytes | None:
    """The chart of the session's answer once the last request is answered, else None."""
    answer = session.answer
    if not (answer.acknowledged and answer.finished is not None):
        return None
    return answer.figures["chart_x"]


@pytest.mark.parametrize("started_before_taken", [False, True])
def test_only_a_run_after_the_server_took_the_last_press_answers_it(
    started_before_taken: bool,
) -> None:
    """Seen in the classroom soaks: the server read the last press (31) after a run of the
    press before (33) had finished; that run must not be taken for the answer."""
    socket = Socket()
    session = Session(socket, "http://host", "page", "")  # type: ignore[arg-type]
    session.expect()
    asyncio.run(session.last_rerun())
    kinds = [(m.WhichOneof("type"), m.set_run_on_save) for m in socket.sent]
    assert kinds == [("rerun_script", False), ("set_run_on_save", True), ("set_run_on_save", False)]
    for message in full_run(33):  # the previous press's run, begun before the server read 31
        session._handle(message)
    assert answer_of(session) is None
    if started_before_taken:  # the new run may start before the probe is read
        session._handle(full_run(31, ends=False)[0])
    session._handle(status(True))
    session._handle(status(False))
    assert answer_of(session) is None
    for message in full_run(31, started=not started_before_taken):
        session._handle(message)
    assert answer_of(session) == b'{"value": 31}'


def test_each_probe_is_acknowledged_by_its_own_turn_of_run_on_save() -> None:
    session = Session(Socket(), "http://host", "page", "")  # type: ignore[arg-type]
    session.expect()
    asyncio.run(session.last_rerun())
    for message in [status(True), status(False), *full_run(1)]:
        session._handle(message)
    assert answer_of(session) == b'{"value": 1}'
    session.expect()
    asyncio.run(session.last_rerun())
    for message in [status(False), *full_run(1), status(False)]:  # a run ending, not the probe
        session._handle(message)
    assert answer_of(session) is None
    for message in [status(True), status(True), status(False), *full_run(2)]:
        session._handle(message)
    assert answer_of(session) == b'{"value": 2}'
    assert session.probes == session.probes_seen == 2


def test_a_mismatch_is_dumped_with_both_figures(tmp_path: Path) -> None:
    dump = MismatchDump(tmp_path)
    key = ("seed=1", "width", 256.0)
    dump.first[key] = (b'{"first": 1}', {"kind": "before a move"})
    folder = dump.write(key, b'{"this": 2}', {"kind": "fresh"})
    assert folder.name == "001_width_256"
    assert (folder / "first.json").read_bytes() == b'{"first": 1}'
    assert (folder / "this.json").read_bytes() == b'{"this": 2}'
    asked = json.loads((folder / "asked.json").read_text())
    assert asked["value"] == 256.0 and asked["first"]["kind"] == "before a move"
    assert asked["this"]["kind"] == "fresh"


def test_a_streamlit_outside_the_tested_range_is_refused_by_name() -> None:
    """The client speaks Streamlit's private protocol: a release outside `TESTED_STREAMLIT`
    stops it at start with the version and the range; the releases in the range pass."""
    (low, high) = TESTED_STREAMLIT
    assert check_streamlit(f"{low[0]}.{low[1]}.0") == f"{low[0]}.{low[1]}.0"
    assert check_streamlit(f"{high[0]}.{high[1]}.9") == f"{high[0]}.{high[1]}.9"
    for outside in (f"{high[0]}.{high[1] + 1}.0", f"{low[0]}.{low[1] - 1}.2", "2.0.0"):
        with pytest.raises(RuntimeError, match=rf"Streamlit {outside} is installed"):
            check_streamlit(outside)
