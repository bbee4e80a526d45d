#!/usr/bin/env python3
"""Python's csv module doing what bench/csv asks of marketo.csv.
csv_baseline.py rename|func IN OUT"""
import csv
import string
import sys

RENAME = ["leadId", "email", "fullName", "lastName", "company", "title", "phone", "city",
          "score", "notes"]


def main():
    mode, src, dst = sys.argv[1:4]
    with open(src, newline="", encoding="utf-8") as fi, \
            open(dst, "w", newline="", encoding="utf-8") as fo:
        r, w = csv.reader(fi), csv.writer(fo, lineterminator="\n")
        next(r)
        if mode == "rename":
            w.writerow(RENAME)
            w.writerows(r)
            return
        w.writerow(["email", "fullName", "score", "company"])
        for row in r:
            if row[1] == "":
                continue
            w.writerow([row[1].lower(), string.capwords(row[2]), str(int(float(row[8]))), row[4]])


main()
