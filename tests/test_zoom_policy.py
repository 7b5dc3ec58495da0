"""The pure PMI policy, passcode rules, and the client against the Zoom emulator."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from daemon.config import ZoomConfig
from daemon.http import client, mask_url, retry_after
from daemon.sandbox.domain import Sandbox
from daemon.sandbox.server import Response
from daemon.zoom import PmiSettings, ZoomClient, ZoomRefused, missing_security, random_passcode


def settings(require: str = "all", password: str = "123456", waiting: bool = True) -> PmiSettings:
    return PmiSettings(require, password, waiting, {})


def test_secure_settings_need_nothing() -> None:
    assert missing_security(settings(), lambda r: "x") is None


def test_each_lack_is_repaired_and_passcode_only_when_missing() -> None:
    assert missing_security(settings(require="jbh_only"), lambda r: "x") == {
        "schedule_meeting": {"require_password_for_pmi_meetings": "all"}}
    assert missing_security(settings(password=""), lambda r: "new") == {
        "schedule_meeting": {"pmi_password": "new"}}
    assert missing_security(settings(waiting=False), lambda r: "x") == {
        "in_meeting": {"waiting_room": True}}


@pytest.mark.parametrize("requirement", [
    {}, {"only_allow_numeric": True, "length": 9},
    {"have_special_character": True, "have_upper_and_lower_characters": True, "length": 10},
    {"consecutive_characters_length": 4},
])
def test_random_passcode_meets_account_rules(requirement: dict[str, object]) -> None:
    rng = random.Random(7)
    for _ in range(50):
        code = random_passcode(requirement, rng)  # type: ignore[arg-type]
        assert max(8, int(requirement.get("length", 0))) <= len(code) <= 10  # type: ignore[call-overload]
        if requirement.get("only_allow_numeric"):
            assert code.isdigit()
        else:
            assert any(c.isdigit() for c in code) and any(c.isupper() for c in code)
        if requirement.get("have_special_character"):
            assert any(c in "@-_*" for c in code)


def test_retry_after_parsing() -> None:
    assert retry_after({"Retry-After": "2"}) == 2.0
    assert retry_after({"retry-after": "0.5"}) == 0.5
    assert retry_after({"Retry-After": "Wed, 25 Nov 2026 10:00:10 GMT"},
                       now=1795600800.0) == pytest.approx(10.0)
    assert retry_after({"Retry-After": "soon"}) is None
    assert retry_after({}) is None


def test_mask_url_hides_pwd_only() -> None:
    assert mask_url("see https://z.us/j/1?pwd=abc.1 ok") == "see https://z.us/j/1?pwd=*** ok"


@pytest.fixture
def make_client(sandbox: Sandbox) -> Iterator[Callable[[list[float]], ZoomClient]]:
    made: list[ZoomClient] = []

    def make(slept: list[float]) -> ZoomClient:
        config = ZoomConfig("sandbox-account", "sandbox-client", Path("unused"),
                            sandbox.zoom_server.url + "/v2", sandbox.zoom_server.url)
        made.append(ZoomClient(config, sandbox.zoom_secret, client(sandbox.ca.bundle),
                               sleep=slept.append))
        return made[-1]

    yield make
    for zoom in made:
        zoom.close()


def test_429_retry_after_is_honoured(
        sandbox: Sandbox, make_client: Callable[[list[float]], ZoomClient]) -> None:
    sandbox.zoom.add_user("ada@example.edu", 8123456789)
    sandbox.zoom.fail("GET", "/v2/users/", Response(429, {"code": 429, "message": "Too many"},
                                                    {"Retry-After": "1.5"}))
    slept: list[float] = []
    link = make_client(slept).link("ada@example.edu")
    assert link.meeting_id == "8123456789"
    assert slept == [1.5]


def test_enforce_reads_back_and_reports_a_silent_refusal(
        sandbox: Sandbox, make_client: Callable[[list[float]], ZoomClient]) -> None:
    sandbox.zoom.add_user("ada@example.edu", 8123456789, locked={"waiting_room"})
    with pytest.raises(ZoomRefused, match="waiting_room"):
        make_client([]).enforce("ada@example.edu")
    assert sandbox.zoom.user("ada@example.edu").pmi_password  # the rest was repaired


def test_wrong_secret_gives_a_clear_error_without_the_secret(
        sandbox: Sandbox, make_client: Callable[[list[float]], ZoomClient]) -> None:
    sandbox.zoom.add_user("ada@example.edu", 8123456789)
    zoom = make_client([])
    zoom._auth._basic = "Basic " + "d3Jvbmc6d3Jvbmc="  # wrong:wrong
    with pytest.raises(Exception, match="zoom.client_secret_file") as caught:
        zoom.link("ada@example.edu")
    assert sandbox.zoom_secret not in str(caught.value)


def test_trust_is_exactly_the_ca_bundle(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent.pem")
    with client(sandbox.ca.bundle) as trusting:
        assert trusting.get(sandbox.zoom_server.url + "/v2/users/x").status_code == 401
    with client(None) as default, pytest.raises(httpx.ConnectError):
        default.get(sandbox.zoom_server.url + "/v2/users/x")
