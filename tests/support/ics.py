"""iCalendar resources for calendar tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

NOW = datetime.now(timezone.utc).replace(microsecond=0, second=0)


def stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def ics(
    uid: str,
    start: datetime | str,
    summary: str,
    *,
    organizer: str = "ivana@adriaticfoods.hr",
    attendees: tuple[str, ...] = ("first@ourco.example",),
    extra: str = "",
    minutes: int = 60,
    overrides: str = "",
    timezone_block: str = "",
) -> str:
    if isinstance(start, datetime):
        dtstart, dtend = f"DTSTART:{stamp(start)}", f"DTEND:{stamp(start + timedelta(minutes=minutes))}"
    else:
        dtstart, dtend = start, ""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//syncd tests//EN"]
    if timezone_block:
        lines.append(timezone_block.strip())
    lines += ["BEGIN:VEVENT", f"UID:{uid}", f"DTSTAMP:{stamp(NOW)}", dtstart]
    if dtend:
        lines.append(dtend)
    lines += [f"SUMMARY:{summary}", f"ORGANIZER;CN=Organizer:mailto:{organizer}"]
    lines += [f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{a}" for a in attendees]
    if extra:
        lines.append(extra.strip())
    lines.append("END:VEVENT")
    if overrides:
        lines.append(overrides.strip())
    lines.append("END:VCALENDAR")
    return "\r\n".join(lines) + "\r\n"
