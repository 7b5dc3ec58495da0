"""The long-running part in small pieces, which service.Service composes: passes
(passes.py), the pre-session checks (checks.py), the engine in force (slot.py), who leads
(lead.py) and systemd's notify protocol (notify.py)."""
