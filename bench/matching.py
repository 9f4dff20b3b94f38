"""Matching benchmark: exact-rule throughput and index memory at 100,000 customers.

Builds a CustomerIndex for N companies (one domain each) with a person per company
(one email each), then links M synthetic activities (a mix of known people, unknown
people at known domains, free-mail and unknown domains) on one core, and compares with
a baseline of one plain dict lookup per participant address.

Run:  python bench/matching.py [--customers 100000] [--records 1000000]
Ends with one line of key=value figures. (The fuzzy-name rule is not built yet:
fuzzy_per_s reports n/a until it is.)
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mapping.freemail import packaged_free_mail_domains  # noqa: E402
from mapping.matcher import CustomerIndex, MatchPolicy, link_participants  # noqa: E402
from syncd.records import Participant, Role  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args()
    rng = random.Random(5)
    policy = MatchPolicy(internal_domains=frozenset({"ourco.example"}), free_mail_domains=packaged_free_mail_domains())
    companies = args.customers // 2
    customers = [(n, "company", f"Company {n}", None) for n in range(companies)]
    customers += [(companies + n, "person", f"Person {n}", n) for n in range(companies)]
    identities = [(n, "domain", f"company{n}.example") for n in range(companies)]
    identities += [(companies + n, "email", f"person{n}@company{n}.example") for n in range(companies)]
    tracemalloc.start()
    started = time.perf_counter()
    index = CustomerIndex.build(identities, customers, policy)
    build_s = time.perf_counter() - started
    index_mb = tracemalloc.get_traced_memory()[0] / 2**20
    tracemalloc.stop()

    def participant(n: int) -> Participant:
        pick = rng.random()
        if pick < 0.5:
            k = rng.randrange(companies)
            return Participant(f"person{k}@company{k}.example", "", Role.FROM)
        if pick < 0.75:
            return Participant(f"new{n}@company{rng.randrange(companies)}.example", "", Role.FROM)
        if pick < 0.9:
            return Participant(f"someone{n}@gmail.com", "", Role.FROM)
        return Participant(f"x{n}@unknown{n}.example", "", Role.FROM)

    records = [(participant(n), Participant("me@ourco.example", "", Role.TO)) for n in range(args.records)]
    started = time.perf_counter()
    linked = sum(1 for parts in records if link_participants(parts, index, policy))
    exact_s = time.perf_counter() - started
    lookup = index.email_owner
    started = time.perf_counter()
    baseline_hits = sum(1 for parts in records if any(p.email in lookup for p in parts))
    baseline_s = time.perf_counter() - started
    exact_per_s = args.records / exact_s
    print(f"index of {args.customers} customers built in {build_s:.2f}s, {index_mb:.0f} MB")
    print(f"exact rules: {args.records} records in {exact_s:.2f}s = {exact_per_s:,.0f}/s, {linked} linked")
    print(f"baseline dict lookup: {args.records / baseline_s:,.0f}/s ({baseline_hits} hits)")
    print(f"customers={args.customers} records={args.records} exact_per_s={exact_per_s:.0f} "
          f"baseline_per_s={args.records / baseline_s:.0f} fuzzy_per_s=n/a index_mb={index_mb:.0f} "
          f"index_build_s={build_s:.2f} linked={linked}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
