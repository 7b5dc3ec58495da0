"""A roster from a CSV file beside [[instructors]]: joins served from the next pass,
leaves offboarded after the grace period, and no read that fails, is empty or drops too
many ever offboards anyone until an admin accepts it."""

from __future__ import annotations

import json
import signal
from datetime import datetime
from pathlib import Path

from conftest import HOUR, at, officehours, spawn, wait_for
from officehours_sandbox.domain import Sandbox

from daemon.reconcile import START_MARK
from daemon.roster import CachedGroups

PEOPLE = [(f"Instructor {n}", f"i{n}@example.edu") for n in range(10)]


def campus(sandbox: Sandbox, now: datetime, people: list[tuple[str, str]]) -> dict[str, str]:
    """Each person a Google instructor with one office-hours event; their event ids."""
    events = {}
    for n, (_, email) in enumerate(people):
        sandbox.google.add_calendar(email)
        sandbox.zoom.add_user(email, 8100000000 + n)
        events[email] = sandbox.google.add_event(email, summary="Office Hours",
                                                 start=at(now + HOUR), end=at(now + 2 * HOUR))
    return events


def roster_config(sandbox: Sandbox, grace: float = 24, **service: object) -> Path:
    """The sandbox's config with its [[instructors]] and a [roster] CSV beside them."""
    config = sandbox.write_config(**service)
    config.write_text(config.read_text() + f'\n[roster]\ncsv_file = "{sandbox.dir}/roster.csv"'
                      f"\nleave_grace_hours = {grace}\nmax_drop_percent = 10\n")
    return config


def write_roster(sandbox: Sandbox, people: list[tuple[str, str]]) -> None:
    rows = ["\ufeffName,EMAIL,provider,Department"] + [f"{name},{email},google,Physics"
                                                      for name, email in people]
    (sandbox.dir / "roster.csv").write_text("\n".join(rows) + "\n")


def linked(sandbox: Sandbox, email: str, event: str) -> bool:
    return START_MARK in sandbox.google.event(email, event).get("description", "")


def test_a_join_is_served_and_a_leave_offboarded_after_the_grace_only(
        sandbox: Sandbox, now: datetime) -> None:
    events = campus(sandbox, now, PEOPLE[:3])
    write_roster(sandbox, PEOPLE[:2])
    config = roster_config(sandbox, grace=24)
    assert officehours(config, "check-config").returncode == 0
    assert officehours(config, "sync").returncode == 0
    assert linked(sandbox, "i0@example.edu", events["i0@example.edu"])
    assert not linked(sandbox, "i2@example.edu", events["i2@example.edu"])

    write_roster(sandbox, PEOPLE[:3])  # i2 joins
    assert officehours(config, "sync").returncode == 0
    assert linked(sandbox, "i2@example.edu", events["i2@example.edu"])

    write_roster(sandbox, [PEOPLE[0], PEOPLE[2]])  # i1 leaves (1 of 3 is more than 10%)
    held = officehours(config, "sync")
    assert held.returncode == 1 and "drops 1 of 3" in held.stderr
    assert officehours(config, "roster", "--accept").returncode == 0
    assert officehours(config, "sync").returncode == 0  # applied: i1 is in the grace period
    assert linked(sandbox, "i1@example.edu", events["i1@example.edu"])
    table = officehours(config, "status").stdout
    assert "left the roster: offboarded at" in table and "    from the roster" in table

    now_config = roster_config(sandbox, grace=0)  # the grace is over
    assert officehours(now_config, "sync").returncode == 0
    assert not linked(sandbox, "i1@example.edu", events["i1@example.edu"])
    assert linked(sandbox, "i0@example.edu", events["i0@example.edu"])

    write_roster(sandbox, PEOPLE[:3])  # i1 comes back: served again from the next pass
    assert officehours(now_config, "sync").returncode == 0
    assert linked(sandbox, "i1@example.edu", events["i1@example.edu"])


def test_an_empty_or_unreadable_roster_offboards_nobody_and_says_so(
        sandbox: Sandbox, now: datetime) -> None:
    events = campus(sandbox, now, PEOPLE[:2])
    write_roster(sandbox, PEOPLE[:2])
    config = roster_config(sandbox, grace=0)
    assert officehours(config, "sync").returncode == 0
    for broken in ("", None):  # empty, then missing
        if broken is None:
            (sandbox.dir / "roster.csv").unlink()
        else:
            (sandbox.dir / "roster.csv").write_text("name,email,provider\n")
        result = officehours(config, "sync")
        assert result.returncode == 1 and "roster read held" in result.stderr
        assert all(linked(sandbox, email, event) for email, event in events.items())
        status = officehours(config, "status")
        assert status.returncode == 1 and "ROSTER HELD" in status.stdout
    checked = officehours(config, "check-config")
    assert checked.returncode == 78  # CONTRACT.md; and it says what `run` does with it
    assert "`run` holds such a read: the roster last applied stays in force" in checked.stderr


def test_check_config_counts_the_roster_and_gives_the_verdict_run_gives(
        sandbox: Sandbox, now: datetime) -> None:
    """check-config said `2 instructor(s)` on a campus of 5, and OK for a file that `run`
    then held."""
    people = [(f"Instructor {n}", f"i{n:02d}@example.edu") for n in range(20)]
    campus(sandbox, now, people)
    write_roster(sandbox, people)
    config = roster_config(sandbox, grace=0)
    first = officehours(config, "check-config")  # no pass yet: a first read is applied
    assert first.returncode == 0, first.stderr
    assert "and 20 roster member(s) in" in first.stdout
    assert officehours(config, "sync").returncode == 0
    write_roster(sandbox, people[:17])  # 3 of 20 at once: `run` holds it
    checked = officehours(config, "check-config")
    assert checked.returncode == 1 and "`run` would HOLD this read" in checked.stderr
    assert "drops 3 of 20" in checked.stderr and "17 roster member(s)" in checked.stdout
    write_roster(sandbox, people[:19])  # 1 of 20: applied
    assert officehours(config, "check-config").returncode == 0


def test_a_15_percent_drop_is_held_until_accepted(sandbox: Sandbox, now: datetime) -> None:
    people = [(f"Instructor {n}", f"i{n:02d}@example.edu") for n in range(20)]
    events = campus(sandbox, now, people)
    write_roster(sandbox, people)
    config = roster_config(sandbox, grace=0)
    assert officehours(config, "sync").returncode == 0
    write_roster(sandbox, people[:17])  # 3 of 20 at once: 15%, more than 10%
    shown = json.loads(officehours(config, "roster", "--json").stdout)
    assert shown["next_read"]["leaves"] == ["i17@example.edu", "i18@example.edu",
                                            "i19@example.edu"]
    assert "drops 3 of 20" in shown["next_read"]["held"]
    assert officehours(config, "sync").returncode == 1
    assert linked(sandbox, "i19@example.edu", events["i19@example.edu"])  # still served
    assert officehours(config, "roster", "--accept").returncode == 0
    assert officehours(config, "sync").returncode == 0
    assert not linked(sandbox, "i19@example.edu", events["i19@example.edu"])
    write_roster(sandbox, people[:16])  # 1 of 17: 6%, within the limit: applied at once
    assert officehours(config, "sync").returncode == 0
    assert not linked(sandbox, "i16@example.edu", events["i16@example.edu"])


def test_the_same_person_in_two_sources_is_one_instructor(
        sandbox: Sandbox, now: datetime) -> None:
    sandbox.add_instructor("Ada Lovelace", "ada@example.edu", 8123456789)
    ada = sandbox.google.add_event("ada@example.edu", summary="Office Hours",
                                   start=at(now + HOUR), end=at(now + 2 * HOUR))
    write_roster(sandbox, [("Ada L.", "ADA@example.edu")])
    config = roster_config(sandbox)
    assert officehours(config, "sync").returncode == 0
    assert sandbox.google.event("ada@example.edu", ada)["description"].count(START_MARK) == 1
    rows = json.loads(officehours(config, "status", "--json").stdout)["instructors"]
    assert [r["email"] for r in rows] == ["ada@example.edu"]
    (sandbox.dir / "roster.csv").write_text("name,email,provider,zoom_user\n"
                                            "Ada,ada@example.edu,google,other@example.edu\n")
    conflict = officehours(config, "check-config")
    assert conflict.returncode == 78 and "different zoom_user" in conflict.stderr


def test_a_roster_edited_while_run_runs_is_picked_up(sandbox: Sandbox, now: datetime) -> None:
    events = campus(sandbox, now, PEOPLE[:2])
    write_roster(sandbox, PEOPLE[:1])
    config = roster_config(sandbox, sync_interval_seconds=1)
    process = spawn(config, "run")
    try:
        wait_for(lambda: linked(sandbox, "i0@example.edu", events["i0@example.edu"]),
                 what="the first pass")
        write_roster(sandbox, PEOPLE[:2])
        wait_for(lambda: linked(sandbox, "i1@example.edu", events["i1@example.edu"]),
                 what="the new member to be served")
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr


def entra_campus(sandbox: Sandbox, now: datetime, people: list[tuple[str, str]],
                 ) -> dict[str, str]:
    """Outlook instructors, each a user of the directory with one office-hours event."""
    events = {}
    for n, (_, email) in enumerate(people):
        sandbox.graph.add_mailbox(email)
        sandbox.zoom.add_user(email, 8200000000 + n)
        events[email] = sandbox.graph.add_event(email, now + HOUR, now + 2 * HOUR,
                                                subject="Office Hours")
    return events


def entra_config(sandbox: Sandbox, group: str) -> Path:
    sandbox.instructors.append({"name": "Placeholder", "email": "owner@example.edu",
                                "provider": "microsoft"})  # so that [microsoft] is written
    sandbox.graph.add_mailbox("owner@example.edu")
    sandbox.zoom.add_user("owner@example.edu", 8299999999)
    config = sandbox.write_config()
    config.write_text(config.read_text() + f'\n[roster]\nentra_group_id = "{group}"\n'
                      "leave_grace_hours = 0\n")
    return config


def outlook_linked(sandbox: Sandbox, email: str, event: str) -> bool:
    return START_MARK in sandbox.graph.event(email, event)["body"]["content"]


def test_an_entra_group_nested_and_paged_is_the_roster(sandbox: Sandbox, now: datetime) -> None:
    people = PEOPLE[:5]
    events = entra_campus(sandbox, now, people)
    ids = {email: sandbox.graph.add_user(email, name) for name, email in people}
    sandbox.graph.add_group("nested", ids["i3@example.edu"], ids["i4@example.edu"])
    sandbox.graph.add_group("faculty", ids["i0@example.edu"], ids["i1@example.edu"], "nested")
    sandbox.graph.member_page_size = 2  # 4 members: two pages
    config = entra_config(sandbox, "faculty")
    assert officehours(config, "sync").returncode == 0
    assert len(sandbox.graph.requests("GET", "/transitiveMembers")) == 2  # page two read
    for email in ("i0@example.edu", "i1@example.edu", "i3@example.edu", "i4@example.edu"):
        assert outlook_linked(sandbox, email, events[email]), email
    assert not outlook_linked(sandbox, "i2@example.edu", events["i2@example.edu"])
    sandbox.graph.add_group("nested", ids["i3@example.edu"], ids["i4@example.edu"],
                            ids["i2@example.edu"])  # a join in the nested group
    assert officehours(config, "sync").returncode == 0
    assert outlook_linked(sandbox, "i2@example.edu", events["i2@example.edu"])
    shown = json.loads(officehours(config, "roster", "--json").stdout)
    assert shown["source"] == "Entra group faculty" and len(shown["roster"]) == 5


def test_an_entra_group_the_app_may_not_read_holds_and_offboards_nobody(
        sandbox: Sandbox, now: datetime) -> None:
    events = entra_campus(sandbox, now, PEOPLE[:2])
    ids = [sandbox.graph.add_user(email, name) for name, email in PEOPLE[:2]]
    sandbox.graph.add_group("faculty", *ids)
    config = entra_config(sandbox, "faculty")
    assert officehours(config, "sync").returncode == 0
    sandbox.graph.app_roles = {"Calendars.ReadWrite"}  # GroupMember.Read.All withdrawn
    result = officehours(config, "sync")
    assert result.returncode == 1 and "Authorization_RequestDenied" in result.stderr
    assert all(outlook_linked(sandbox, e, events[e]) for e in events)  # nobody offboarded
    assert "ROSTER HELD" in officehours(config, "status").stdout


def test_doctor_reads_each_roster_source_once(sandbox: Sandbox, now: datetime) -> None:
    entra_campus(sandbox, now, PEOPLE[:2])
    sandbox.graph.add_group("faculty", *[sandbox.graph.add_user(e, n) for n, e in PEOPLE[:2]])
    config = entra_config(sandbox, "faculty")
    result = officehours(config, "doctor")
    assert "ok    roster: 2 member(s) read" in result.stdout, result.stdout
    assert len(sandbox.graph.requests("GET", "/transitiveMembers")) == 1
    sandbox.graph.app_roles = set()
    result = officehours(config, "doctor")
    assert result.returncode == 1 and "FAIL  roster:" in result.stdout
    assert "GroupMember.Read.All" in result.stdout


def test_doctor_checks_every_roster_member_or_a_sample(sandbox: Sandbox,
                                                      now: datetime) -> None:
    """doctor said `2 instructor(s)` on a campus of 5 and never looked at the roster's."""
    campus(sandbox, now, PEOPLE[:3])
    write_roster(sandbox, PEOPLE[:3])
    sandbox.add_instructor("Ada Lovelace", "ada@example.edu", 8123456789)
    config = roster_config(sandbox)
    result = officehours(config, "doctor")
    assert result.returncode == 0, result.stdout
    assert "4 instructor(s) (google 4, microsoft 0; 1 in [[instructors]], 3 more from the " \
           "roster)" in result.stdout
    calendars = [line for line in result.stdout.splitlines() if " calendar: " in line]
    assert len(calendars) == 4 and all(line.startswith("ok ") for line in calendars)
    assert all(f"<{email}> calendar" in result.stdout for _, email in PEOPLE[:3])
    sampled = officehours(config, "doctor", "--sample", "2")
    assert "ok    sample: 2 of 4 instructors, drawn at random" in sampled.stdout
    assert sum(" calendar: " in line for line in sampled.stdout.splitlines()) == 2
    assert officehours(config, "doctor", "--sample", "0").returncode == 2  # argparse


def test_a_group_is_read_once_per_refresh_interval_not_per_pass() -> None:
    reads: list[str] = []
    clock = [0.0]

    def read(group: str) -> list[dict[str, str]]:
        reads.append(group)
        return [{"mail": "i0@example.edu"}]

    cached = CachedGroups(read, 60, clock=lambda: clock[0])
    for _ in range(5):  # five passes within the hour
        assert cached("faculty") == [{"mail": "i0@example.edu"}]
        clock[0] += 300
    assert reads == ["faculty"]
    clock[0] = 3601
    cached("faculty")
    assert reads == ["faculty", "faculty"]


def test_a_google_group_nested_and_paged_is_the_roster(sandbox: Sandbox, now: datetime) -> None:
    events = campus(sandbox, now, PEOPLE[:4])
    sandbox.google.add_group("tas@example.edu", "i2@example.edu", "i3@example.edu")
    sandbox.google.add_group("faculty@example.edu", "i0@example.edu", "tas@example.edu")
    sandbox.google.member_page_size = 2  # 4 members (a group among them): two pages
    config = roster_config(sandbox)
    config.write_text(config.read_text().replace(
        f'csv_file = "{sandbox.dir}/roster.csv"',
        'google_group = "faculty@example.edu"\ngoogle_group_admin = "admin@example.edu"\n'
        f'google_directory_url = "{sandbox.google_server.url}/"'))
    sandbox.google.add_calendar("admin@example.edu")  # a user of the domain
    (account,) = sandbox.google.delegated_scopes
    refused = officehours(config, "sync")  # the directory scope is not delegated yet
    assert refused.returncode == 1 and "Google Group faculty@example.edu" in refused.stderr
    assert not linked(sandbox, "i0@example.edu", events["i0@example.edu"])
    sandbox.google.delegated_scopes[account] |= {
        "https://www.googleapis.com/auth/admin.directory.group.member.readonly"}
    assert officehours(config, "sync").returncode == 0
    for email in ("i0@example.edu", "i2@example.edu", "i3@example.edu"):
        assert linked(sandbox, email, events[email]), email
    paged = [r for r in sandbox.google.requests("GET", "/members") if r.status == 200]
    assert len(paged) == 2, paged  # page two read
    assert not linked(sandbox, "i1@example.edu", events["i1@example.edu"])
    shown = json.loads(officehours(config, "roster", "--json").stdout)
    assert shown["source"] == "Google Group faculty@example.edu" and len(shown["roster"]) == 3


def test_a_group_read_rides_out_the_vendors_faults(sandbox: Sandbox, now: datetime) -> None:
    events = entra_campus(sandbox, now, PEOPLE[:2])
    sandbox.graph.add_group("faculty", *[sandbox.graph.add_user(e, n) for n, e in PEOPLE[:2]])
    config = entra_config(sandbox, "faculty")
    for kind in ("503", "429-date", "reset"):
        sandbox.graph.inject(kind, "GET", "/transitiveMembers")
    assert officehours(config, "sync").returncode == 0
    assert all(outlook_linked(sandbox, e, events[e]) for e in events)
    assert len(sandbox.graph.requests("GET", "/transitiveMembers")) >= 2


def test_members_without_an_address_hold_the_read_and_name_the_permission(
        sandbox: Sandbox, now: datetime) -> None:
    """Membership readable, members not (no User.ReadBasic.All): Graph gives ids alone.
    Dropping them would offboard real people after the grace."""
    events = entra_campus(sandbox, now, PEOPLE[:3])
    ids = [sandbox.graph.add_user(email, name) for name, email in PEOPLE[:3]]
    sandbox.graph.add_group("faculty", *ids)
    config = entra_config(sandbox, "faculty")
    assert officehours(config, "sync").returncode == 0
    sandbox.graph.app_roles -= {"User.ReadBasic.All"}
    result = officehours(config, "sync")
    assert result.returncode == 1
    assert "3 of 3 members came without a usable address" in result.stderr
    assert "User.ReadBasic.All" in result.stderr
    assert all(outlook_linked(sandbox, e, events[e]) for e in events)  # nobody offboarded
    assert "ROSTER HELD" in officehours(config, "status").stdout


def test_a_read_adding_more_than_max_add_percent_is_held(
        sandbox: Sandbox, now: datetime) -> None:
    """A source switched to "All Staff": 5 members, then 25. A first read is applied, and
    up to 10 new people at once always are."""
    people = [(f"Instructor {n}", f"i{n:02d}@example.edu") for n in range(25)]
    campus(sandbox, now, people)
    write_roster(sandbox, people[:5])
    config = roster_config(sandbox, grace=0)
    assert officehours(config, "sync").returncode == 0  # the first read: applied
    write_roster(sandbox, people)
    result = officehours(config, "sync")
    assert result.returncode == 1 and "adds 20 people to 5 members" in result.stderr
    assert "max_add_percent" in result.stderr
    assert len(json.loads(officehours(config, "roster", "--json").stdout)["roster"]) == 5
    write_roster(sandbox, people[:15])  # 10 more: within the floor, applied at once
    assert officehours(config, "sync").returncode == 0
    assert len(json.loads(officehours(config, "roster", "--json").stdout)["roster"]) == 15


def test_two_instructors_with_one_zoom_user_hold_the_read(
        sandbox: Sandbox, now: datetime) -> None:
    campus(sandbox, now, PEOPLE[:2])
    (sandbox.dir / "roster.csv").write_text(
        "name,email,provider,zoom_user\n"
        "Instructor 0,i0@example.edu,google,\n"
        "Instructor 1,i1@example.edu,google,I0@Example.edu\n")
    config = roster_config(sandbox, grace=0)
    result = officehours(config, "sync")
    assert result.returncode == 1
    assert "i1@example.edu and i0@example.edu have the same Zoom user" in result.stderr


def test_addresses_compare_after_unicode_normalisation_and_case_folding(
        sandbox: Sandbox, now: datetime) -> None:
    """The same person in [[instructors]] and, spelled in full-width letters and another
    case, in the roster: one instructor, one set of links."""
    sandbox.add_instructor("Ada Lovelace", "ada@example.edu", 8123456789)
    sandbox.google.add_event("ada@example.edu", summary="Office Hours", start=at(now + HOUR),
                             end=at(now + 2 * HOUR))
    (sandbox.dir / "roster.csv").write_text(
        "name,email,provider\nAda Lovelace,\uff21\uff24\uff21@Example.edu,google\n")
    config = roster_config(sandbox, grace=0)
    result = officehours(config, "sync")
    assert result.returncode == 0, result.stderr
    assert "1 instructor(s), 0 failed" in result.stdout


def test_roster_commands_tell_the_truth(sandbox: Sandbox, now: datetime) -> None:
    """--accept with nothing readable refuses (it said 'roster applied' and exited 0); after
    the file is fixed, `roster` shows the verdict of a read made now, not the old hold."""
    campus(sandbox, now, PEOPLE[:4])
    write_roster(sandbox, PEOPLE[:4])
    config = roster_config(sandbox, grace=0)
    assert officehours(config, "sync").returncode == 0
    (sandbox.dir / "roster.csv").write_text("name,email,provider\nBroken,not-an-address,google\n")
    assert officehours(config, "sync").returncode == 1  # held
    accepted = officehours(config, "roster", "--accept")
    assert accepted.returncode == 1 and "nothing to accept" in accepted.stderr
    assert "line 2" in accepted.stderr
    write_roster(sandbox, PEOPLE[:4])  # fixed
    shown = officehours(config, "roster")
    assert shown.returncode == 0, shown.stdout
    assert "HELD now" not in shown.stdout and "reads well now" in shown.stdout


def test_check_config_names_every_bad_csv_row_and_the_real_reason(
        sandbox: Sandbox, now: datetime) -> None:
    """Five bad rows were five rounds of check-config; an empty file said the header lacked
    its columns; an unclosed quote said an email was empty."""
    campus(sandbox, now, PEOPLE[:1])
    config = roster_config(sandbox)
    csv_file = sandbox.dir / "roster.csv"
    csv_file.write_text("name,email,provider\n" + "".join(
        f"Bad {n},bad{n}-at-example.edu,google\n" for n in range(5)) +
        "Good,good@example.edu,google\nOdd,odd@example.edu,zoom\n")
    result = officehours(config, "check-config")
    assert result.returncode == 78
    assert "6 bad row(s)" in result.stderr, result.stderr
    for line in (2, 3, 4, 5, 6, 8):
        assert f"line {line}: " in result.stderr, (line, result.stderr)
    csv_file.write_text("")
    empty = officehours(config, "check-config")
    assert empty.returncode == 78 and "is empty" in empty.stderr
    csv_file.write_text('name,email,provider\n"Ada,ada@example.edu,google\nBob,b@x.edu,google\n')
    quoted = officehours(config, "check-config")
    assert quoted.returncode == 78 and "never closed" in quoted.stderr, quoted.stderr


def test_remove_links_without_an_instructor_takes_out_every_roster_member_too(
        sandbox: Sandbox, now: datetime) -> None:
    """With 3 instructors from the CSV beside 2 in [[instructors]] it touched 2 of 5, and
    the README's next step (systemctl clean) erased the only record of the other 3."""
    listed = [("Ada Lovelace", "ada@example.edu"), ("Bob", "bob@example.edu")]
    events = campus(sandbox, now, [*listed, *PEOPLE[:3]])
    for name, email in listed:
        sandbox.instructors.append({"name": name, "email": email, "provider": "google"})
    write_roster(sandbox, PEOPLE[:3])
    config = roster_config(sandbox, grace=24)
    assert officehours(config, "sync").returncode == 0
    assert all(linked(sandbox, email, event) for email, event in events.items())
    write_roster(sandbox, PEOPLE[:2])  # i2 leaves: in its grace, still linked, state knows
    config.write_text(config.read_text().replace("max_drop_percent = 10",
                                                 "max_drop_percent = 50"))
    assert officehours(config, "sync").returncode == 0
    result = officehours(config, "remove-links")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not [email for email, event in events.items() if linked(sandbox, email, event)]
    assert result.stdout.count("event(s) changed") == 5
