#!/usr/bin/env python3
"""Writes a lead file for bench/csv's keys section: header with `email`, rows
shaped like csv_gen.py's (quoted values, line breaks in quotes) but every
email filled and unique, then DUPS copies of the first rows' emails at the
end (a block appended again: copies in other parts, moved by the plan).
Usage: keys_gen.py OUT ROWS REPEAT DUPS [BLANK [HEADER]]: a body of ROWS rows
written REPEAT times, each time with its own emails (ROWS * REPEAT keys);
BLANK: the share of rows with no email (0); HEADER "csv_gen": csv_gen.py's
column names (the email in "Email Address")."""
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from csv_gen import CITY, CO, FIRST, LAST, TITLE, q  # noqa: E402 (the same values)


def main():
    out, nrows, repeat, dups = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    blank = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    email_col = "Email Address" if len(sys.argv) > 6 and sys.argv[6] == "csv_gen" else "email"
    rnd = random.Random(42)
    rows = []
    for i in range(1, nrows + 1):
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        email = f"{first}.{last.replace(' ', '')}{i}.@R@@Example.COM"
        if rnd.random() < blank:
            email = ""
        co = rnd.choice(CO) + (", Inc." if rnd.random() < 0.3 else "")
        note = rnd.choice(["", "call back", 'said "maybe"', "line one\nline two", "ok, later"])
        vals = [str(i), email, f"{first} {last}", last, co, rnd.choice(TITLE),
                f"+1-555-{rnd.randrange(10000):04d}", rnd.choice(CITY),
                f"{rnd.randrange(100)}.0", note]
        rows.append(",".join(q(v) for v in vals) + "\n")
    body = "".join(rows)
    with open(out, "w", encoding="utf-8", newline="") as f:
        f.write(f"id,{email_col},Full Name,Last Name,Company,Job Title,Phone,City,Score,Notes\n")
        for r in range(repeat):
            f.write(body.replace("@R@", str(r)))
        f.write("".join(rows[:dups]).replace("@R@", "0"))


main()
