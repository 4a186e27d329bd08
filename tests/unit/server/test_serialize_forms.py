"""JsonableCache: the JSON forms of shared view parts, kept by identity, are exactly what
``to_jsonable`` gives, along random histories of a view (objects kept, changed, dropped);
and a view rendered by FastJSONResponse as it is reads back as its ``to_jsonable``."""

import json
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from dvr.model.hostview import HostMac, RemoteHost, RouterView
from dvr.server.api.dvr_protocol import fields_of
from dvr.server.hostview_parts import shared_forms
from dvr.server.jsonbody import FastJSONResponse
from dvr.server.serialize import JsonableCache, to_jsonable
from tests.unit.model.test_hostview_delta import history


def encoded(value: object) -> str:
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_the_forms_of_every_view_of_a_random_history_are_to_jsonables(data):
    forms = shared_forms()
    for view in history(data):
        assert encoded(forms.to_jsonable(view)) == encoded(to_jsonable(view))


def test_a_shared_object_has_one_form_and_an_equal_new_object_its_own():
    forms = JsonableCache(frozenset({RemoteHost}))
    remote = RemoteHost("h2", "192.0.2.2", ())
    first = forms.to_jsonable(remote)
    assert forms.to_jsonable(remote) is first
    again = forms.to_jsonable(replace(remote))
    assert again == first and again is not first
    mac = HostMac("h2", "fa:16:3f:00:00:01")  # not of the shared types: converted each time
    assert forms.to_jsonable(mac) is not forms.to_jsonable(mac)


def test_past_its_limit_it_starts_afresh_and_stays_right():
    forms = JsonableCache(frozenset({RemoteHost, RouterView}), limit=3)
    remotes = [RemoteHost(f"h{i}", f"192.0.2.{i}", ()) for i in range(10)]
    for _ in range(2):
        assert [forms.to_jsonable(r) for r in remotes] == [to_jsonable(r) for r in remotes]


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_a_view_rendered_as_it_is_reads_back_as_its_to_jsonable(data):
    for view in history(data):
        body = {**fields_of(view), "full": True}
        assert json.loads(FastJSONResponse(body).body) == {**to_jsonable(view), "full": True}


def test_a_string_orjson_refuses_is_rendered_escaped():
    remote = RemoteHost("h\ud800", "192.0.2.2", ())  # a lone surrogate, stored long ago
    raw = FastJSONResponse({"view": remote}).body
    assert raw == encoded({"view": to_jsonable(remote)}).encode("ascii")
    assert json.loads(raw)["view"]["host"] == "h\ud800"
