#!/usr/bin/env python3
"""Writes a CSV for bench/csv: header + rows of 10 columns, some values quoted
(commas, doubled quotes, newlines), some emails empty. Usage:
csv_gen.py OUT MEGABYTES [REPEAT]: the body is made once (MEGABYTES) and
written REPEAT times after the header, so a 1 GB file costs a 100 MB one."""
import random
import sys

FIRST = ["ann", "bob", "cy", "dee", "eve", "finn", "gus", "hal", "ivy", "jo", "kim", "lou"]
LAST = ["smith", "o'neil", "van der berg", "li", "garcía", "nguyen", "müller", "brown"]
CO = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell"]
TITLE = ["VP Sales", "CTO", "Head of \"Growth\"", "Engineer", "Analyst, Ops", "CEO"]
CITY = ["Paris", "Berlin", "Austin", "Lyon", "Osaka", "Lima"]


def q(v):
    if any(c in v for c in ',"\r\n'):
        return '"' + v.replace('"', '""') + '"'
    return v


def main():
    out, mb = sys.argv[1], float(sys.argv[2])
    repeat = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    rnd = random.Random(42)
    rows, size, i = [], 0, 0
    while size < mb * 1e6:
        i += 1
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        email = "" if rnd.random() < 0.05 else f"{first}.{last.replace(' ', '')}{i}@Example.COM"
        co = rnd.choice(CO) + (", Inc." if rnd.random() < 0.3 else "")
        note = rnd.choice(["", "call back", 'said "maybe"', "line one\nline two", "ok, later"])
        vals = [str(i), email, f"{first} {last}", last, co, rnd.choice(TITLE),
                f"+1-555-{rnd.randrange(10000):04d}", rnd.choice(CITY),
                f"{rnd.randrange(100)}.0", note]
        line = ",".join(q(v) for v in vals) + "\n"
        rows.append(line)
        size += len(line.encode())
    body = "".join(rows).encode()
    with open(out, "wb") as f:
        f.write(b"id,Email Address,Full Name,Last Name,Company,Job Title,Phone,City,Score,Notes\n")
        for _ in range(repeat):
            f.write(body)


if __name__ == "__main__":  # bench/keys_gen.py takes its value lists
    main()
