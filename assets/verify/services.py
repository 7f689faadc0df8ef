"""slurmbox verify's checks of the REST API and of Prometheus, run on the login node as
the cluster's default user.

    python3 services.py rest URL...      a token from `scontrol token`: GET /jobs answers
                                         with it, and 401 without one
    python3 services.py metrics URL...   Prometheus scrapes every target (waits up to 45 s
                                         for its first scrapes)
    python3 services.py web URL...       the dashboard: its page with a Content-Security-
                                         Policy, 401 for data without a token, and the
                                         user's jobs with the token of the link web-login
                                         prints

Each URL is a place the service may answer (its name on the cluster's network, its
host's address on a host's network); the first that answers is used. Prints one line;
exits non-zero with the reason when the check fails.
"""

import json
import os
import pwd
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

API = "/slurm/v0.0.42/jobs"
# The dashboard's certificate may be the site's own or self-signed: this checks that the
# dashboard answers, not who signed its certificate.
UNCHECKED = ssl._create_unverified_context()


def get(urls, path, headers=None, wait=30):
    """(url, status, body) from the first of urls that answers path; a service that has
    just started may not listen yet, so the list is tried again for up to `wait` s."""
    deadline = time.monotonic() + wait
    while True:
        errors = []
        for base in urls:
            request = urllib.request.Request(base + path, headers=headers or {})
            try:
                with urllib.request.urlopen(request, timeout=10, context=UNCHECKED) as answer:
                    if path == "/":
                        return base, answer.status, answer.headers.get("Content-Security-Policy", "")
                    return base, answer.status, answer.read()
            except urllib.error.HTTPError as e:
                return base, e.code, e.read()
            except (urllib.error.URLError, OSError) as e:
                errors.append(f"{base}: {getattr(e, 'reason', e)}")
        if time.monotonic() > deadline:
            sys.exit("no answer: " + "; ".join(errors))
        time.sleep(1)


def rest(urls):
    token = subprocess.run(["scontrol", "token"], capture_output=True, text=True)
    if token.returncode != 0:
        sys.exit(f"scontrol token: {token.stderr.strip()}")
    jwt = token.stdout.strip().split("=", 1)[1]
    user = pwd.getpwuid(os.getuid()).pw_name
    base, status, _ = get(urls, API)
    if status != 401:
        sys.exit(f"{base}{API} answered {status} without a token, not 401")
    headers = {"X-SLURM-USER-NAME": user, "X-SLURM-USER-TOKEN": jwt}
    base, status, body = get(urls, API, headers)
    if status != 200:
        sys.exit(f"{base}{API} with {user}'s token: {status} {body[:300]!r}")
    jobs = len(json.loads(body)["jobs"])
    print(f"GET {API} as {user} with a token: {jobs} jobs; 401 without one ({base})")


def metrics(urls):
    deadline = time.monotonic() + 45
    while True:
        base, status, body = get(urls, "/api/v1/targets")
        if status != 200:
            sys.exit(f"{base}/api/v1/targets: {status} {body[:300]!r}")
        targets = json.loads(body)["data"]["activeTargets"]
        down = [t for t in targets if t["health"] != "up"]
        if targets and not down:
            n = len(targets)
            print(f"{n} target{'' if n == 1 else 's'} scraped, all up ({base})")
            return
        if time.monotonic() > deadline:
            why = [f"{t['scrapePool']} {t['health']}: {t.get('lastError', '')}" for t in down]
            sys.exit("; ".join(why) or "Prometheus has no targets")
        time.sleep(1)


def web(urls):
    base, status, policy = get(urls, "/")
    if status != 200 or "script-src 'self'" not in policy:
        sys.exit(f"{base}/ answered {status} with Content-Security-Policy {policy!r}")
    data = "/api" + API
    base, status, _ = get([base], data)
    if status != 401:
        sys.exit(f"{base}{data} answered {status} without a token, not 401")
    link = subprocess.run(["web-login", "10m"], capture_output=True, text=True)
    if link.returncode != 0 or "#token=" not in link.stdout:
        sys.exit(f"web-login: {link.stderr.strip() or link.stdout.strip()}")
    token = link.stdout.strip().split("#token=", 1)[1]
    base, status, body = get([base], data, {"X-SLURM-USER-TOKEN": token})
    if status != 200:
        sys.exit(f"{base}{data} with the token of web-login's link: {status} {body[:300]!r}")
    jobs = len(json.loads(body)["jobs"])
    print(f"page with its CSP; {jobs} jobs with web-login's token, 401 without ({base})")


if __name__ == "__main__":
    {"rest": rest, "metrics": metrics, "web": web}[sys.argv[1]](sys.argv[2:])
