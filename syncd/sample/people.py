"""The sample's cast: the customers, their people and what they write about (data for ``generate``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Contact:
    company: str
    person: str
    email: str
    phone: str
    website: str
    owner: str


CONTACTS = [
    Contact(
        "Adriatic Foods d.o.o.",
        "Ivana Horvat",
        "ivana.horvat@adriaticfoods.hr",
        "+385 1 4567 890",
        "adriaticfoods.hr",
        "alice",
    ),
    Contact("Adriatic Foods d.o.o.", "Marko Babić", "marko.babic@adriaticfoods.hr", "", "adriaticfoods.hr", "alice"),
    Contact(
        "Baltic Timber Sp. z o.o.",
        "Katarzyna Nowak",
        "k.nowak@baltictimber.pl",
        "+48 22 123 45 67",
        "baltictimber.pl",
        "bob",
    ),
    Contact("Baltic Timber Sp. z o.o.", "Piotr Zieliński", "p.zielinski@baltictimber.pl", "", "baltictimber.pl", "bob"),
    Contact(
        "Nordic Retail AB",
        "Erik Johansson",
        "erik.johansson@nordicretail.se",
        "+46 8 555 123 45",
        "nordicretail.se",
        "alice",
    ),
    Contact("Nordic Retail AB", "Sara Lindberg", "sara.lindberg@nordicretail.se", "", "nordicretail.se", "alice"),
    Contact(
        "Danube Logistics GmbH",
        "Stefan Gruber",
        "stefan.gruber@danube-logistics.at",
        "+43 1 234 5678",
        "danube-logistics.at",
        "bob",
    ),
    Contact("Beogradska Pekara", "Milica Petrović", "milica@bgpekara.rs", "+381 11 3456 789", "bgpekara.rs", "bob"),
    Contact(
        "Atlantic Seafood Ltd",
        "Siobhan Murphy",
        "siobhan.murphy@atlanticseafood.ie",
        "+353 1 555 0101",
        "atlanticseafood.ie",
        "alice",
    ),
    Contact(
        "Atlantic Seafood Ltd", "Liam O'Brien", "liam.obrien@atlanticseafood.ie", "", "atlanticseafood.ie", "alice"
    ),
    Contact(
        "Lisbon Ceramics Lda",
        "Ana Ferreira",
        "ana.ferreira@lisbonceramics.pt",
        "+351 21 123 4567",
        "lisbonceramics.pt",
        "bob",
    ),
    Contact(
        "Alpine Dairy AG", "Lukas Meier", "lukas.meier@alpinedairy.ch", "+41 44 123 45 67", "alpinedairy.ch", "alice"
    ),
    Contact(
        "Tatra Machinery s.r.o.",
        "Jana Kováčová",
        "jana.kovacova@tatramachinery.sk",
        "+421 2 1234 5678",
        "tatramachinery.sk",
        "bob",
    ),
    Contact(
        "Aegean Olive Co.", "Nikos Papadopoulos", "nikos@aegeanolive.gr", "+30 21 0123 4567", "aegeanolive.gr", "alice"
    ),
    Contact(
        "Rhine Chemicals GmbH", "Julia Schmidt", "j.schmidt@rhine-chem.de", "+49 221 123456", "rhine-chem.de", "bob"
    ),
    Contact(
        "Vistula Print Sp. z o.o.", "Tomasz Wójcik", "t.wojcik@vistulaprint.pl", "48225556677", "vistulaprint.pl", "bob"
    ),
    Contact(
        "Fjord Energy AS", "Ingrid Hansen", "ingrid.hansen@fjordenergy.no", "+47 22 12 34 56", "fjordenergy.no", "alice"
    ),
    Contact(
        "Carpathian Wood SRL",
        "Andrei Popescu",
        "andrei.popescu@carpathianwood.ro",
        "+40 21 123 4567",
        "carpathianwood.ro",
        "bob",
    ),
    Contact(
        "Iberia Textiles SL",
        "Lucía García",
        "lucia.garcia@iberiatextiles.es",
        "+34 91 123 45 67",
        "iberiatextiles.es",
        "alice",
    ),
    Contact(
        "Bohemia Glass a.s.", "Petr Novák", "petr.novak@bohemiaglass.cz", "+420 2 2123 4567", "bohemiaglass.cz", "bob"
    ),
    # A private customer who writes from free mail: a person, never a "Gmail" company.
    Contact("", "Marta Kovač", "marta.kovac@gmail.com", "+385 91 234 5678", "", "alice"),
    # A customer with only a company row and a shared mailbox.
    Contact("Tuscany Wines Srl", "", "info@tuscanywines.it", "+39 055 123 4567", "tuscanywines.it", "bob"),
]
# Customers in the workbook that have no mail at all (the Customers sheet shows them with no contact).
QUIET = [
    Contact("Silent Partners Ltd", "Quinn Silent", "quinn@silentpartners.co.uk", "", "silentpartners.co.uk", "bob")
]

SUBJECTS = [
    "Order {n} confirmation",
    "Price list for Q{q}",
    "Delivery schedule week {w}",
    "Invoice {n}",
    "Meeting next week",
    "Samples for the new range",
    "Contract renewal",
    "Complaint about shipment {n}",
    "Payment terms",
    "Catalogue request",
    "Visit at the trade fair",
    "Quote for {n} units",
]
LINES = [
    "Thank you for the quick reply.",
    "Please find the details below.",
    "Could you confirm the quantities?",
    "We would like to move the delivery by a week.",
    "The goods arrived in good condition.",
    "Can we schedule a call on Thursday?",
    "Attached is the updated offer.",
    "Looking forward to your answer.",
]
