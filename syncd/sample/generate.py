"""Generate the bundled demo sample, deterministically: ``python -m syncd.sample.generate``.

Writes ``syncd/sample/data/``: two staff Maildirs (inbox and Sent) for a small trading
company, a customer workbook and a config. The same seed always gives the same mail, so
tests can state exact expectations. The sample deliberately holds the awkward cases a
real mailbox has: threads across two mailboxes, a free-mail customer and an unknown
free-mail sender, a no-reply notification, an internal-only thread, a message to two
customers, non-UTF-8 charsets, a message without a Date, and a malformed file.
"""

from __future__ import annotations

import random
import shutil
from datetime import date, datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from syncd.sample.people import CONTACTS, LINES, QUIET, SUBJECTS, Contact

DATA = Path(__file__).parent / "data"
SEED = 20261120
END = datetime(2026, 11, 20, 17, 0, tzinfo=timezone.utc)
OUR_DOMAIN = "northwind-trading.com"
STAFF = {"alice": "Alice Lindqvist", "bob": "Bob Marić"}


class Mailboxes:
    """Writes messages into the staff Maildirs with deterministic file names."""

    def __init__(self, root: Path):
        self.root = root
        self.counter = 0

    def deliver(self, staff: str, folder: str, raw: bytes, when: datetime) -> None:
        self.counter += 1
        base = self.root / staff if folder == "INBOX" else self.root / staff / f".{folder}"
        new = base / "new"
        new.mkdir(parents=True, exist_ok=True)
        name = f"{int(when.timestamp())}.M{self.counter:05d}P1.sample"
        (new / name).write_bytes(raw)


def addr(name: str, email: str) -> str:
    return f"{name} <{email}>"


def staff_addr(staff: str) -> str:
    return addr(STAFF[staff], f"{staff}@{OUR_DOMAIN}")


def build(
    subject: str,
    sender: str,
    to: list[str],
    when: datetime,
    body: str,
    msgid: str,
    cc: list[str] | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    extra: dict[str, str] | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = f"<{msgid}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
        msg["References"] = " ".join(f"<{r}>" for r in (references or [in_reply_to]))
    for key, value in (extra or {}).items():
        msg[key] = value
    msg.set_content(body)
    return bytes(msg)


def generate(root: Path = DATA) -> Path:
    rng = random.Random(SEED)
    if root.exists():
        shutil.rmtree(root)
    mail = Mailboxes(root / "mail")
    thread_no = 0
    for round_no in range(3):
        for contact in CONTACTS:
            thread_no += 1
            staff = contact.owner
            other = "bob" if staff == "alice" else "alice"
            start = END - timedelta(days=rng.randint(1, 170), hours=rng.randint(0, 9), minutes=rng.randint(0, 59))
            subject = rng.choice(SUBJECTS).format(n=rng.randint(1000, 9999), q=rng.randint(1, 4), w=rng.randint(1, 52))
            cc_other = thread_no % 5 == 0  # some threads copy the colleague: one message in two mailboxes
            ids: list[str] = []
            person_name = contact.person or contact.company
            for step in range(rng.randint(2, 5)):
                when = start + timedelta(hours=step * rng.randint(2, 30))
                msgid = f"t{thread_no}.m{step}.{round_no}@{'mail.' + OUR_DOMAIN if step % 2 else 'mx.example.net'}"
                body = "\n".join(rng.sample(LINES, 3))
                reply_subject = subject if step == 0 else f"{'Re' if step % 2 else 'AW'}: {subject}"
                cc = [staff_addr(other)] if cc_other else None
                if step % 2 == 0:  # the customer writes
                    raw = build(
                        reply_subject,
                        addr(person_name, contact.email),
                        [staff_addr(staff)],
                        when,
                        f"Hello,\n\n{body}\n\nBest regards,\n{person_name}",
                        msgid,
                        cc=cc,
                        in_reply_to=ids[-1] if ids else None,
                        references=ids or None,
                    )
                    mail.deliver(staff, "INBOX", raw, when)
                    if cc_other:
                        mail.deliver(other, "INBOX", raw, when)
                else:  # staff answers
                    quoted = f"\n\nOn {format_datetime(when)} {person_name} wrote:\n> earlier text"
                    raw = build(
                        reply_subject,
                        staff_addr(staff),
                        [addr(person_name, contact.email)],
                        when,
                        f"Hi,\n\n{body}\n\n{STAFF[staff]}{quoted}",
                        msgid,
                        cc=cc,
                        in_reply_to=ids[-1],
                        references=ids,
                    )
                    mail.deliver(staff, "Sent", raw, when)
                    if cc_other:
                        mail.deliver(other, "INBOX", raw, when)
                ids.append(msgid)
    _special_cases(mail, rng)
    _workbook(root / "customers.xlsx")
    _orders_workbook(root / "orders.xlsx", rng)
    _calls_workbook(root / "calls.xlsx", rng)
    (root / "syncd.toml").write_text(CONFIG, encoding="utf-8")
    return root


def _special_cases(mail: Mailboxes, rng: random.Random) -> None:
    when = END - timedelta(days=3)
    # An unknown free-mail sender: a person nobody has on file; lands in Review.
    mail.deliver(
        "alice",
        "INBOX",
        build(
            "Question about your products",
            addr("Tom Jones", "tomjones1987@gmail.com"),
            [staff_addr("alice")],
            when,
            "Do you ship to the UK?",
            "freemail.1@mail.gmail.com",
        ),
        when,
    )
    # A no-reply notification from a customer's system: automated, not a conversation.
    when = END - timedelta(days=2)
    mail.deliver(
        "alice",
        "INBOX",
        build(
            "Your order has shipped",
            "Adriatic Foods <noreply@adriaticfoods.hr>",
            [staff_addr("alice")],
            when,
            "Tracking number 123.",
            "notify.1@adriaticfoods.hr",
            extra={"Auto-Submitted": "auto-generated"},
        ),
        when,
    )
    # An internal-only thread: staff talking to staff is not customer history.
    for step in range(3):
        when = END - timedelta(days=5, hours=-step)
        sender, receiver = ("alice", "bob") if step % 2 == 0 else ("bob", "alice")
        raw = build(
            "Team lunch on Friday" if step == 0 else "Re: Team lunch on Friday",
            staff_addr(sender),
            [staff_addr(receiver)],
            when,
            "Pizza or sushi?",
            f"internal.{step}@mail.{OUR_DOMAIN}",
            in_reply_to=f"internal.{step - 1}@mail.{OUR_DOMAIN}" if step else None,
        )
        mail.deliver(sender, "Sent", raw, when)
        mail.deliver(receiver, "INBOX", raw, when)
    # One message to two customers at once: it belongs to both.
    when = END - timedelta(days=4)
    mail.deliver(
        "alice",
        "Sent",
        build(
            "Joint shipment from Rijeka",
            staff_addr("alice"),
            [
                addr("Ivana Horvat", "ivana.horvat@adriaticfoods.hr"),
                addr("Erik Johansson", "erik.johansson@nordicretail.se"),
            ],
            when,
            "We can combine both orders in one container.",
            "joint.1@mail.northwind-trading.com",
        ),
        when,
    )
    # Non-UTF-8: ISO-8859-2 body and an RFC 2047 subject, as older Croatian mail clients send.
    when = END - timedelta(days=6)
    raw = (
        "From: =?iso-8859-2?q?Ivana_Horvat?= <ivana.horvat@adriaticfoods.hr>\r\n"
        f"To: {staff_addr('alice')}\r\n"
        "Subject: =?iso-8859-2?q?Ponuda_za_=BEitarice_i_=E8aj?=\r\n"
        f"Date: {format_datetime(when)}\r\n"
        "Message-ID: <latin2.1@adriaticfoods.hr>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=iso-8859-2\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode("ascii") + "Poštovana, šaljemo ponudu za žitarice i čaj.\r\n".encode("iso-8859-2")
    mail.deliver("alice", "INBOX", raw, when)
    # Windows-1250 with an unknown charset label on a second part and no Date header at all.
    when = END - timedelta(days=7)
    raw = (
        "From: Katarzyna Nowak <k.nowak@baltictimber.pl>\r\n"
        f"To: bob@{OUR_DOMAIN}\r\n"
        "Subject: =?windows-1250?q?Zam=F3wienie_drewna?=\r\n"
        "Message-ID: <nodate.1@baltictimber.pl>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=x-unknown-charset\r\n\r\n"
    ).encode("ascii") + "Dzień dobry, przesyłam zamówienie.\r\n".encode("cp1250")
    mail.deliver("bob", "INBOX", raw, when)
    # A malformed file: no headers, no addresses; it must reach the quarantine, not the timeline.
    mail.deliver("bob", "INBOX", b"\x00\x01this is not a message\r\n\xff\xfe garbage without headers\r\n", when)


_CITIES = {"hr": "Zagreb", "pl": "Warszawa", "se": "Stockholm", "rs": "Beograd"}
_CONSENT = ("da", "contract", "legitimate interest", None)


def _details(number: int, contact: Contact) -> tuple[str | None, datetime, str | None]:
    """City, birth date and consent for a sample contact, the same on every run."""
    tld = (contact.website or contact.email).rsplit(".", 1)[-1]
    born = datetime(1960 + number * 7 % 35, 1 + number * 5 % 12, 1 + number * 11 % 28)
    return _CITIES.get(tld), born, _CONSENT[number % len(_CONSENT)] if contact.person else None


def _workbook(path: Path) -> None:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Customers"
    sheet.append(["Company", "Contact", "Email", "Phone", "Website", "Account owner", "City", "Born", "Consent"])
    for number, contact in enumerate(CONTACTS + QUIET):
        sheet.append(
            [
                contact.company or None,
                contact.person or None,
                contact.email,
                contact.phone or None,
                contact.website or None,
                f"{contact.owner}@{OUR_DOMAIN}",
                *_details(number, contact),
            ]
        )
    # The same person entered twice (no accents, no email, typed as text): one duplicate
    # cluster on Review, found from city and birth date, not from the name alone.
    first = CONTACTS[0]
    city, born, _consent = _details(0, first)
    sheet.append([first.company, "Ivana Horvat", None, None, None, f"{first.owner}@{OUR_DOMAIN}", city,
                  born.strftime("%d.%m.%Y"), None])  # fmt: skip
    workbook.properties.created = workbook.properties.modified = datetime(2026, 11, 1)
    workbook.save(path)


def _orders_workbook(path: Path, rng: random.Random) -> None:
    """Orders as a sales team keeps them: a title block, the header on row 3, customer names
    typed by hand (upper case, without the legal form, once with a typo), dates as date
    cells, as text and as a bare serial number, amounts as numbers and as text."""
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Orders"
    sheet.append(["Northwind Trading: orders 2026"])
    sheet.append([])
    sheet.append(["Order no.", "Date", "Customer", "Amount", "Sales rep"])
    companies = list(dict.fromkeys(c.company for c in CONTACTS if c.company))
    owners = {c.company: c.owner for c in CONTACTS}
    written = {
        "Adriatic Foods d.o.o.": "ADRIATIC FOODS",
        "Nordic Retail AB": "Nordic Retail",
        "Danube Logistics GmbH": "Danube Logistcs GmbH",
        "Baltic Timber Sp. z o.o.": "Baltic Timber",
    }
    number = 4100
    for company in companies:
        for _ in range(2):
            number += 1
            day = (END - timedelta(days=rng.randint(3, 160))).date()
            style = number % 3
            when: object = (
                datetime(day.year, day.month, day.day)
                if style == 0
                else (day.strftime("%d.%m.%Y.") if style == 1 else (day - date(1899, 12, 30)).days)
            )
            amount = round(rng.uniform(300, 25000), 2)
            shown: object = amount if number % 4 else f"{amount:,.2f}".replace(",", " ").replace(".", ",")
            sheet.append(
                [f"SO-{number}", when, written.get(company, company), shown, f"{owners[company]}@{OUR_DOMAIN}"]
            )
    workbook.properties.created = workbook.properties.modified = datetime(2026, 11, 1)
    workbook.save(path)


def _calls_workbook(path: Path, rng: random.Random) -> None:
    """A call log: the number says who it was; some numbers were typed as numbers (and lost
    their +), some in local style."""
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Calls"
    sheet.append(["When", "Number", "Topic", "Notes", "Staff"])
    topics = ["Delivery date", "Price question", "Complaint", "Follow-up on offer", "New catalogue"]
    for n, contact in enumerate(c for c in CONTACTS if c.phone):
        when = (END - timedelta(days=rng.randint(1, 120), hours=rng.randint(0, 8))).replace(
            minute=0, second=0, tzinfo=None
        )
        digits = contact.phone.replace(" ", "")
        number: object = float(digits.lstrip("+")) if n % 3 == 0 else contact.phone
        if digits.startswith("+385") and n % 3 == 1:
            number = "0" + digits[4:]  # a Croatian number in local style
        sheet.append([when, number, rng.choice(topics), rng.choice(LINES), f"{contact.owner}@{OUR_DOMAIN}"])
    workbook.properties.created = workbook.properties.modified = datetime(2026, 11, 1)
    workbook.save(path)


CONFIG = """\
# syncd demo config: two staff mailboxes, a customer workbook, an order book and a call log.
# Paths are relative to this file. See docs/configuration.md for every key.

[service]
state_dir = "state"
timezone = "Europe/Zagreb"

[matching]
internal_domains = ["northwind-trading.com"]
default_phone_region = "HR"

[timeline]
path = "timeline.xlsx"

[[sources]]
name = "customers"
kind = "excel_customers"
path = "customers.xlsx"
sheet = "Customers"
[sources.columns]
company = "Company"
person = "Contact"
email = "Email"
phone = "Phone"
domain = "Website"
owner = "Account owner"
city = "City"
birth_date = "Born"
consent = "Consent"

[[sources]]
name = "orders"
kind = "excel_activities"
activity = "order"
path = "orders.xlsx"
sheet = "Orders"
key_columns = ["Order no."]
currency = "EUR"
[sources.columns]
date = "Date"
customer = "Customer"
subject = "Order no."
amount = "Amount"
staff = "Sales rep"

[[sources]]
name = "calls"
kind = "excel_activities"
activity = "call"
path = "calls.xlsx"
[sources.columns]
date = "When"
phone = "Number"
subject = "Topic"
details = "Notes"
staff = "Staff"

[[sources]]
name = "alice-mail"
kind = "maildir"
path = "mail/alice"
owner = "alice@northwind-trading.com"

[[sources]]
name = "bob-mail"
kind = "maildir"
path = "mail/bob"
owner = "bob@northwind-trading.com"
"""


if __name__ == "__main__":
    print(generate())
