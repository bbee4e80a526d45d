#!/usr/bin/python3
"""A whole lead import with python3-requests, the way Python clients for
Marketo do it: token, multipart upload, polling, failures and warnings.
Environment: MARKETO_BASE_URL, MARKETO_CLIENT_ID, MARKETO_CLIENT_SECRET.
Argument: the CSV file. Prints one JSON summary on stdout; exits 1 on any
answer a client would not accept."""
import json
import os
import sys
import time

import requests


def main(path):
    base = os.environ["MARKETO_BASE_URL"]
    session = requests.Session()
    auth = session.post(base + "/identity/oauth/token", params={
        "grant_type": "client_credentials",
        "client_id": os.environ["MARKETO_CLIENT_ID"],
        "client_secret": os.environ["MARKETO_CLIENT_SECRET"],
    })
    auth.raise_for_status()
    token = auth.json()
    headers = {"Authorization": "Bearer " + token["access_token"]}
    with open(path, "rb") as f:
        created = session.post(base + "/bulk/v1/leads.json", headers=headers,
                               data={"format": "csv"},
                               files={"file": (os.path.basename(path), f, "text/csv")})
    created.raise_for_status()
    body = created.json()
    if not body.get("success"):
        print(json.dumps({"error": body}))
        return 1
    batch = body["result"][0]["batchId"]
    deadline = time.time() + 30
    while True:
        status = session.get(base + "/bulk/v1/leads/batch/%d.json" % batch,
                             headers=headers).json()["result"][0]
        if status["status"] in ("Complete", "Failed"):
            break
        if time.time() > deadline:
            print(json.dumps({"error": "timeout", "status": status}))
            return 1
        time.sleep(0.05)
    files = {}
    for which in ("failures", "warnings"):
        r = session.get(base + "/bulk/v1/leads/batch/%d/%s.json" % (batch, which),
                        headers=headers)
        files[which] = {"status": r.status_code,
                        "content_type": r.headers.get("Content-Type"),
                        "text": r.text}
    print(json.dumps({"token_type": token["token_type"], "expires_in": token["expires_in"],
                      "created": body["result"][0], "status": status, "files": files}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
