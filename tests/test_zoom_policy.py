"""The pure PMI policy, passcode rules, and the client against the Zoom emulator."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from officehours_sandbox.domain import Sandbox
from officehours_sandbox.server import Response

from daemon.config import ZoomConfig
from daemon.errors import (
    CalendarError,
    CredentialsRefused,
    ZoomCredentialsRefused,
    ZoomError,
    ZoomRefused,
    ZoomThrottled,
    explain,
    fix,
)
from daemon.http import Outbound, retry_after
from daemon.model import mask_url
from daemon.zoom.client import ZoomClient
from daemon.zoom.policy import PmiState, Repair, missing_security, random_passcode


def pmi(require: str = "all", password: str = "123456", waiting: bool = True,
        url: str = "https://z.us/j/1?pwd=x") -> PmiState:
    return PmiState(require, password, waiting, url, "1")


def test_secure_settings_need_nothing() -> None:
    assert missing_security(pmi(), lambda r: "x") is None


def test_each_lack_is_repaired_where_it_lives_and_passcode_only_when_missing() -> None:
    assert missing_security(pmi(require="jbh_only"), lambda r: "x") == Repair(
        {"schedule_meeting": {"require_password_for_pmi_meetings": "all"}}, None)
    assert missing_security(pmi(password=""), lambda r: "new") == Repair(
        None, {"password": "new"})
    assert missing_security(pmi(waiting=False), lambda r: "x") == Repair(
        None, {"settings": {"waiting_room": True}})


@pytest.mark.parametrize(("policy", "url", "shown"), [
    ("auto", "https://z.us/j/1?pwd=abc", False), ("auto", "https://z.us/j/1", True),
    (True, "https://z.us/j/1?pwd=abc", True), (False, "https://z.us/j/1", False),
])
def test_passcode_goes_in_the_invite_as_the_policy_says(
        policy: bool | str, url: str, shown: bool) -> None:
    link = pmi(url=url).link(policy)  # type: ignore[arg-type]
    assert link.passcode == ("123456" if shown else "")


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
    # Zoom documents an ISO-8601 moment (https://developers.zoom.us/docs/api/rest/rate-limits/)
    assert retry_after({"Retry-After": "2026-11-25T10:00:20Z"},
                       now=1795600800.0) == pytest.approx(20.0)
    assert retry_after({"Retry-After": "2026-11-26T10:00:00Z"}, now=1795600800.0) == 60.0
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
        made.append(ZoomClient(config, sandbox.zoom_secret, Outbound(sandbox.ca.bundle).httpx(
            "zoom", sandbox.zoom_server.url), sleep=slept.append))
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
    link = make_client(slept).link("ada@example.edu", False)
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
    with pytest.raises(ZoomCredentialsRefused) as caught:
        zoom.link("ada@example.edu", "auto")
    assert caught.value.status == 401
    assert "zoom.client_secret_file" in explain(caught.value)  # the one place for prose
    assert sandbox.zoom_secret not in explain(caught.value)


def test_trust_is_exactly_the_ca_bundle(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent.pem")
    with Outbound(sandbox.ca.bundle).httpx("zoom", sandbox.zoom_server.url) as trusting:
        assert trusting.get(sandbox.zoom_server.url + "/v2/users/x").status_code == 401
    with Outbound(None).httpx("zoom", sandbox.zoom_server.url) as default, \
            pytest.raises(httpx.ConnectError):
        default.get(sandbox.zoom_server.url + "/v2/users/x")


def zoom_requests(sandbox: Sandbox, method: str | None = None) -> list[str]:
    return [f"{m} {p.split('?')[0]}" for m, p in ((r.method, r.path) for r in sandbox.zoom.log)
            if method is None or m == method]


def test_the_personal_rooms_own_waiting_room_is_judged_and_repaired(
        sandbox: Sandbox, make_client: Callable[[list[float]], ZoomClient]) -> None:
    """The user's default waiting room is on, the Personal Room's own is off: students
    walk straight in. The repair goes to the meeting, and the read-back confirms it."""
    user = sandbox.zoom.add_user("ada@example.edu", 8123456789, waiting_room=True,
                                 require_password_for_pmi_meetings="all",
                                 pmi_password="428571", pmi_waiting_room=False)
    zoom = make_client([])
    before = zoom.pmi_state("ada@example.edu")
    assert before.lacking() == ["waiting_room"]
    enforcement = zoom.enforce("ada@example.edu")
    assert enforcement.repaired and not enforcement.after.lacking()
    assert user.pmi_waiting_room is True and user.secure
    assert zoom_requests(sandbox, "PATCH") == ["PATCH /v2/meetings/8123456789"]
    assert user.settings_patches == 0  # the user's defaults are not ours to change


def test_a_secure_pmi_is_never_patched(
        sandbox: Sandbox, make_client: Callable[[list[float]], ZoomClient]) -> None:
    sandbox.zoom.add_user("ada@example.edu", 8123456789, require_password_for_pmi_meetings="all",
                          pmi_password="428571", waiting_room=True)
    enforcement = make_client([]).enforce("ada@example.edu")
    assert not enforcement.repaired
    assert zoom_requests(sandbox) == ["POST /oauth/token", "GET /v2/users/ada@example.edu",
                                      "GET /v2/users/ada@example.edu/settings",
                                      "GET /v2/meetings/8123456789"]


def test_link_without_embedded_passcode_carries_it_for_the_invite(
        sandbox: Sandbox, make_client: Callable[[list[float]], ZoomClient]) -> None:
    sandbox.zoom.add_user("ada@example.edu", 8123456789, pmi_password="428571",
                          embed_password_in_join_link=False)
    zoom = make_client([])
    link = zoom.link("ada@example.edu", "auto")
    assert "pwd=" not in link.url and link.passcode == "428571"
    assert zoom.link("ada@example.edu", False).passcode == ""


def test_a_daily_limit_is_not_retried_within_the_pass(
        sandbox: Sandbox, make_client: Callable[[list[float]], ZoomClient]) -> None:
    sandbox.zoom.add_user("ada@example.edu", 8123456789)
    sandbox.zoom.fail("GET", "/v2/users/", Response(
        429, {"code": 429, "message": "daily"},
        {"Retry-After": "2099-01-01T00:00:00Z", "X-RateLimit-Type": "Daily-limit"}))
    slept: list[float] = []
    with pytest.raises(ZoomThrottled, match="2099-01-01 00:00") as caught:
        make_client(slept).link("ada@example.edu", "auto")
    assert slept == [] and caught.value.until is not None
    assert zoom_requests(sandbox, "GET") == ["GET /v2/users/ada@example.edu"]


def test_the_emulator_allows_100_meeting_updates_a_day_per_user(
        sandbox: Sandbox, make_client: Callable[[list[float]], ZoomClient]) -> None:
    user = sandbox.zoom.add_user("ada@example.edu", 8123456789, pmi_password="428571",
                                 require_password_for_pmi_meetings="all")
    zoom = make_client([])
    for _ in range(100):
        zoom._call("PATCH", "/meetings/8123456789", {"settings": {"waiting_room": False}})
    user.pmi_waiting_room = False
    with pytest.raises(ZoomThrottled, match="limit lifts"):
        zoom.enforce("ada@example.edu")


def test_a_missing_meeting_scope_is_named(
        sandbox: Sandbox, make_client: Callable[[list[float]], ZoomClient]) -> None:
    sandbox.zoom.add_user("ada@example.edu", 8123456789)
    sandbox.zoom.scopes -= {"meeting:read:admin"}
    with pytest.raises(ZoomError, match="4711.*meeting:read:meeting:admin"):
        make_client([]).pmi_state("ada@example.edu")


@pytest.mark.parametrize("headers", [
    {"X-RateLimit-Type": "Daily-limit"},  # no moment: Zoom's daily limits reset at 00:00 UTC
    {"Retry-After": "3600", "X-RateLimit-Type": "QPS"},  # beyond what a pass waits
], ids=["type-only", "long-wait-only"])
def test_either_sign_of_a_daily_limit_stops_the_retries(
        sandbox: Sandbox, make_client: Callable[[list[float]], ZoomClient],
        headers: dict[str, str]) -> None:
    sandbox.zoom.add_user("ada@example.edu", 8123456789)
    sandbox.zoom.fail("GET", "/v2/users/", Response(429, {"code": 429, "message": "x"}, headers))
    slept: list[float] = []
    with pytest.raises(ZoomThrottled) as caught:
        make_client(slept).link("ada@example.edu", False)
    assert slept == [] and caught.value.until > datetime.now(UTC)


@pytest.mark.parametrize("locked", ["require_password_for_pmi_meetings", "waiting_room"])
def test_a_refused_setting_does_not_stop_the_repair_of_the_others(
        sandbox: Sandbox, make_client: Callable[[list[float]], ZoomClient], locked: str) -> None:
    """The account locks one setting and answers its change with 400 code 300."""
    user = sandbox.zoom.add_user("ada@example.edu", 8123456789, locked={locked},
                                 refuse_locked=True)
    with pytest.raises(ZoomRefused, match=locked) as caught:
        make_client([]).enforce("ada@example.edu")
    assert user.pmi_password  # the passcode was set all the same
    assert (user.require_password_for_pmi_meetings == "all") is (locked == "waiting_room")
    assert user.room_waiting_room is (locked != "waiting_room")
    assert caught.value.state is not None and caught.value.state.lacking() == [
        "require_password_for_pmi_meetings" if locked != "waiting_room" else "waiting_room"]


@pytest.mark.parametrize(("error", "provider", "advice"), [
    (ZoomError("x", status=400, code=4711), "", "meeting:read:meeting:admin"),
    (ZoomError("x", status=404, code=1001), "", "ada@example.edu is a licensed user"),
    (ZoomRefused("x"), "", "unlock it in the Zoom web portal"),
    (CalendarError("x", status=403), "google", "domain-wide delegation"),
    (CalendarError("x", status=404), "microsoft", "Calendars.ReadWrite"),
    (CredentialsRefused("x"), "microsoft", "tenant_id, client_id"),
])
def test_each_error_is_explained_with_its_fix_from_its_fields(
        error: Exception, provider: str, advice: str) -> None:
    advised = fix(error, provider, "ada@example.edu")
    assert explain(error, provider, "ada@example.edu") == f"x; fix: {advised}"
    assert advice in explain(error, provider, "ada@example.edu")
    assert explain(ZoomError("a blip", status=502), provider) == "a blip"  # nothing to do
