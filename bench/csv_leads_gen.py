#!/usr/bin/env python3
"""Writes a lead file for bench/csv's dry runs: columns named by the default
lead schema's fields (the embedded sandbox's), every one typed as that schema
says and every value valid (strings quoted where they must be, some over two
lines, some cells blank), and every email different. Usage:
csv_leads_gen.py OUT MEGABYTES [REPEAT]: the body is made once (MEGABYTES) and
written REPEAT times after the header, each copy's emails in a domain of its
own (r000. to r999.), so a 1 GB file costs a 100 MB one and keys stay unique."""
import random
import sys

HEADER = ("email,firstName,lastName,company,title,phone,city,country,annualRevenue,"
          "numberOfEmployees,leadScore,dateOfBirth,unsubscribed,doNotCall,"
          "unsubscribedReason\n")
FIRST = ["ann", "bob", "cy", "dee", "eve", "finn", "gus", "hal", "ivy", "jo", "kim", "zoë"]
LAST = ["smith", "o'neil", "van der berg", "li", "garcía", "nguyen", "müller", "brown"]
CO = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell"]
TITLE = ["VP Sales", "CTO", "Head of \"Growth\"", "Engineer", "Analyst, Ops", "CEO"]
CITY = ["Paris", "Berlin", "Austin", "Lyon", "Osaka", "Lima"]
COUNTRY = ["France", "Germany", "USA", "Japan", "Peru"]
BOOL = ["true", "false", "yes", "no", "1", "0", "TRUE", ""]
REASON = ["", "", "", "moved", 'said "stop"', "line one\nline two", "too many, too often"]


def q(v):
    if any(c in v for c in ',"\r\n'):
        return '"' + v.replace('"', '""') + '"'
    return v


def row(rnd, i):
    first, last = rnd.choice(FIRST), rnd.choice(LAST)
    email = f"{first}.{last.replace(' ', '')}{i}@r000.example.com"
    co = rnd.choice(CO) + (", Inc." if rnd.random() < 0.3 else "")
    revenue = "" if rnd.random() < 0.1 else f"{rnd.randrange(10**8)}.{rnd.randrange(100):02d}"
    born = f"{rnd.randrange(1940, 2006)}-{rnd.randrange(1, 13):02d}-{rnd.randrange(1, 29):02d}"
    vals = [email, first, last, co, rnd.choice(TITLE), f"+1-555-{rnd.randrange(10000):04d}",
            rnd.choice(CITY), rnd.choice(COUNTRY), revenue, str(rnd.randrange(1, 100000)),
            str(rnd.randrange(-50, 200)), "" if rnd.random() < 0.2 else born,
            rnd.choice(BOOL), rnd.choice(BOOL), rnd.choice(REASON)]
    return ",".join(q(v) for v in vals) + "\n"


def main():
    out, mb = sys.argv[1], float(sys.argv[2])
    repeat = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    if repeat > 1000:
        sys.exit("csv_leads_gen.py: at most 1000 copies (their emails' domains)")
    rnd = random.Random(13)
    rows, size, i = [], 0, 0
    while size < mb * 1e6:
        i += 1
        line = row(rnd, i)
        rows.append(line)
        size += len(line.encode())
    body = "".join(rows).encode()
    with open(out, "wb") as f:
        f.write(HEADER.encode())
        for k in range(repeat):
            f.write(body.replace(b"@r000.", b"@r%03d." % k))


main()
