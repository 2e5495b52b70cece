"""Issue 17 harness: load and abuse a real server on loopback, then soak it.

    .venv/bin/python bench/bench_abuse.py                       # sample catalog, 60 s + 5 min
    .venv/bin/python bench/bench_abuse.py --seconds 20 --soak 60 --idle 10     # a quick look
    .venv/bin/python bench/bench_abuse.py --catalog /tmp/full   # a copy of your own catalog

1. A catalog: the bundled sample built with the default model in a temporary folder, or a
   copy of `--catalog` (never written). An admin key is made up and its argon2 hash given to
   the server; an account is made for the failed logins to aim at.
2. `lookalike serve` starts in its own process on 127.0.0.1 (uvicorn; photo searches in one
   process per core) with the default limits, except `--guest-ttl` (120 s) and a 5 s cleanup
   interval so that expiry happens within the run.
3. Idle: the well-behaved searchers alone (`--idle` s): their p99 is the baseline.
4. Mix: 32 clients for `--seconds` (60), each with its own loopback address (127.0.0.x for
   well-behaved clients, 127.0.1.x for abusive ones, so per-client limits apply as they would
   on the internet): photo searches, swipes with a cookie, item writes with the admin key
   (add, change, and delete an older one of its own: the catalog keeps its size, so memory
   growth is not data growth; paced by `--think`), and, as fast as the server answers: wrong
   admin keys, failed logins, cookieless page views and cookieless swipes (each of which would
   make a guest).
5. Soak: the same mix for `--soak` s (300) while the server's RSS (its process, its search
   processes and its password workers, each kind printed apart) is sampled every 5 s. The
   series is printed with its start, end, min, max, its floor (the lowest sample of each
   minute) and the floor's slope. Growth is judged on the floor: the lowest sample of the last
   minute against the lowest of the first (a fifth of the soak each when it is shorter than
   5 min). Memory that leaks is never given back, so it raises the floor; a transient
   allocation raises single samples only, and whether a sample caught one is luck. The raw
   end-vs-start and last-vs-first-minute-median figures are printed beside it: with the
   server's memory flat (the password workers keep argon2's 64 MiB from one hash to the next,
   see lookalike.passwords; the server gives its allocator's free memory back at each cleanup
   round, see lookalike.processes) all three agree within a few MiB.
After the mix and after the soak: every acknowledged swipe and item write is read back.

Pass = 0 answers >= 500 and 0 broken connections; 0 lost acknowledged writes; the searchers'
p99 in the mix <= 2x their idle p99; server RSS growth over the soak < 5 %; guests and
sessions within the bound that the rate limits and the guest TTL allow. Every criterion is
printed with PASS/FAIL; the exit code is 1 when any fails. The machine's other load is printed
too: timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from bench_api import copy_catalog, free_port, with_descendants  # beside this script
from lookalike import Settings
from lookalike.api.deps import hash_admin_key

MIX = {  # clients per kind: 32 in all
    "searcher": 8, "swiper": 6, "writer": 2,  # well-behaved (paced by --think)
    "wrong_key": 4, "bad_login": 4, "viewer": 6, "guest_spam": 2,  # abusive (no pause)
}
WELL_BEHAVED = ("searcher", "swiper", "writer")
PAGES = ["/", "/swipe", "/likes", "/me/feed?n=6", "/items?limit=24", "/me/likes"]
ACCOUNT = {"username": "bench_shopper", "password": "the-bench-secret-42"}


# -- the server ----------------------------------------------------------------------------------


def rss_by_kind(pid: int) -> dict[str, float]:
    """Resident memory of the server ("server"), its search processes ("search"), its password
    workers ("argon2", the processes at nice 19) and multiprocessing's resource tracker
    ("tracker"), MiB."""
    out = dict.fromkeys(("server", "search", "argon2", "tracker"), 0.0)
    for p in with_descendants([pid]):
        try:
            status = Path(f"/proc/{p}/status").read_text().splitlines()
            nice = int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[16])
            cmdline = Path(f"/proc/{p}/cmdline").read_bytes()
        except OSError:  # a process that just ended
            continue
        kind = ("server" if p == pid else "argon2" if nice == 19
                else "tracker" if b"resource_tracker" in cmdline else "search")
        for line in status:
            if line.startswith("VmRSS:"):
                out[kind] += int(line.split()[1]) / 1024
    return out


def rss_mib(pid: int) -> float:
    """Resident memory of the server and all its processes, MiB."""
    return sum(rss_by_kind(pid).values())


@dataclass(frozen=True)
class RssSeries:
    """The soak's RSS samples, (seconds since its start, MiB), summed up."""

    samples: list[tuple[float, float]]
    span: float  # the window compared at each end, s

    def window(self, start: float, end: float) -> list[float]:
        return [m for t, m in self.samples if start <= t <= end] or [self.samples[0][1]]

    @property
    def length(self) -> float:
        return self.samples[-1][0]

    def floors(self) -> list[tuple[float, float]]:
        """(window start, lowest sample) of each consecutive `span`-long window, the last one
        ending with the soak (it overlaps the one before when the soak is not a multiple)."""
        starts = [i * self.span for i in range(max(1, int(self.length // self.span)))]
        if self.length - starts[-1] > self.span * 1.01:
            starts.append(self.length - self.span)
        return [(t, min(self.window(t, t + self.span))) for t in starts]

    def floor_slope(self) -> float:
        """Least-squares slope of the floors, MiB per minute (0 with fewer than 2)."""
        floors = self.floors()
        if len(floors) < 2:
            return 0.0
        ts, ms = np.array([t for t, _ in floors]), np.array([m for _, m in floors])
        return float(np.polyfit(ts / 60, ms, 1)[0])

    def first_floor(self) -> float:
        return min(self.window(0, self.span))

    def last_floor(self) -> float:
        return min(self.window(self.length - self.span, self.length))

    def growth(self, before: float, after: float) -> float:
        return (after - before) / before * 100


def busy_cores_others(seconds: float, exclude: set[int]) -> float:
    """Cores the rest of the machine kept busy over `seconds` (not this harness, not the
    server)."""
    def snapshot() -> tuple[float, float]:
        with Path("/proc/stat").open() as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
        ours = 0.0
        for p in exclude:
            try:
                parts = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
                ours += sum(int(parts[i]) for i in (11, 12, 13, 14)) / os.sysconf("SC_CLK_TCK")
            except OSError:
                continue
        return busy, ours

    b0, o0 = snapshot()
    time.sleep(seconds)
    b1, o1 = snapshot()
    return max(0.0, (b1 - b0) - (o1 - o0)) / seconds


def start_server(catalog_dir: Path, port: int, env: dict[str, str],
                 log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "lookalike", "serve", "--catalog", str(catalog_dir),
           "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                                stderr=err)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/catalog", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("the server did not start within 180 s")


def make_catalog(source: Path | None, target: Path) -> None:
    if source is None:
        from lookalike.demo import build_demo_catalog

        catalog, report = build_demo_catalog(Settings(catalog_dir=target))
        print(f"built the bundled sample ({report.added} items, model "
              f"{catalog.store.model_name}) in {target}")
        catalog.close()
        return
    copy_catalog(source, target)
    print(f"copied {source} to {target}")


def catalog_photos(catalog_dir: Path, n: int, seed: int) -> tuple[list[str], list[bytes]]:
    con = sqlite3.connect(f"file:{catalog_dir / 'catalog.sqlite'}?mode=ro", uri=True)
    rows = con.execute("SELECT id, image_path FROM items ORDER BY rowid").fetchall()
    con.close()
    ids = [str(r[0]) for r in rows]
    paths = [Path(r[1]) for r in rows if Path(r[1]).is_file()]
    random.Random(seed).shuffle(paths)
    return ids, [p.read_bytes() for p in paths[:n]]


@dataclass(frozen=True)
class Rows:
    guests: int
    accounts: int
    sessions: int
    items: int


def count_rows(catalog_dir: Path) -> Rows:
    con = sqlite3.connect(f"file:{catalog_dir / 'catalog.sqlite'}?mode=ro", uri=True,
                          timeout=30)
    guests, accounts = con.execute(
        "SELECT coalesce(sum(is_guest), 0), coalesce(sum(1 - is_guest), 0) FROM users"
    ).fetchone()
    sessions = con.execute("SELECT count(*) FROM sessions").fetchone()[0]
    items = con.execute("SELECT count(*) FROM items").fetchone()[0]
    con.close()
    return Rows(int(guests), int(accounts), int(sessions), int(items))


# -- the clients ---------------------------------------------------------------------------------


@dataclass
class Tally:
    """Answers of one phase, by kind of client."""

    status: dict[str, Counter[int]] = field(default_factory=dict)
    broken: Counter[str] = field(default_factory=Counter)
    search_ms: list[float] = field(default_factory=list)

    def add(self, kind: str, status: int) -> None:
        self.status.setdefault(kind, Counter())[status] += 1

    def server_errors(self) -> int:
        return sum(n for c in self.status.values() for s, n in c.items() if s >= 500)

    def requests(self) -> int:
        return sum(sum(c.values()) for c in self.status.values())


@dataclass
class Client:
    kind: str
    number: int
    address: str
    http: httpx.AsyncClient
    acked: set[str] = field(default_factory=set)  # swipes / items the server acknowledged
    deleted: set[str] = field(default_factory=set)  # items whose deletion it acknowledged
    cursor: int = 0


def new_client(kind: str, number: int, good_index: int, bad_index: int,
               base: str) -> Client:
    well = kind in WELL_BEHAVED
    address = f"127.0.0.{2 + good_index}" if well else f"127.0.1.{1 + bad_index}"
    transport = httpx.AsyncHTTPTransport(local_address=address, retries=0)
    http = httpx.AsyncClient(base_url=base, transport=transport, timeout=120.0)
    return Client(kind, number, address, http)


def new_item_photo(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(96, 72, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


class Load:
    """The clients and what they need: photos, item ids, the admin key."""

    def __init__(self, base: str, photos: list[bytes], item_ids: list[str], admin_key: str,
                 think: float, mix: dict[str, int]) -> None:
        self.photos = photos
        self.item_ids = item_ids
        self.admin_key = admin_key
        self.think = think
        self.clients: list[Client] = []
        good = bad = 0
        for kind, n in mix.items():
            for i in range(n):
                self.clients.append(new_client(kind, i, good, bad, base))
                if kind in WELL_BEHAVED:
                    good += 1
                else:
                    bad += 1
        self.writes = 0

    async def close(self) -> None:
        for c in self.clients:
            await c.http.aclose()

    async def one(self, c: Client, tally: Tally) -> None:
        """One request (or a swipe's feed + swipe) of client `c`."""
        kind = c.kind
        if kind == "searcher":
            photo = self.photos[(c.number * 7 + c.cursor) % len(self.photos)]
            c.cursor += 1
            t0 = time.perf_counter()
            r = await c.http.post("/search", files={"photo": ("q.jpg", photo, "image/jpeg")},
                                  data={"k": "12"})
            if r.status_code == 200:
                tally.search_ms.append((time.perf_counter() - t0) * 1000)
        elif kind == "swiper":
            if c.cursor % 5 == 0:
                feed = await c.http.get("/me/feed?n=5&peek=true")
                tally.add(kind, feed.status_code)
            item = self.item_ids[(c.number * 41 + c.cursor) % len(self.item_ids)]
            c.cursor += 1
            r = await c.http.post("/me/swipes", json={"item_id": item,
                                                      "liked": c.cursor % 3 == 0})
            if r.status_code == 204:
                c.acked.add(item)
        elif kind == "writer":
            self.writes += 1
            item_id = f"bench-{c.number}-{c.cursor}-{secrets.token_hex(3)}"
            c.cursor += 1
            meta = json.dumps({"id": item_id, "title": "Bench item", "category": "Bench",
                               "price": 10.0 + c.cursor % 50})
            photo = new_item_photo(hash(item_id) % 2**32)
            r = await c.http.post("/items", files={"image": ("n.png", photo, "image/png")},
                                  data={"item": meta}, headers={"X-API-Key": self.admin_key})
            if r.status_code == 201:
                c.acked.add(item_id)
                patch = await c.http.patch(f"/items/{item_id}", json={"price": 9.5},
                                           headers={"X-API-Key": self.admin_key})
                tally.add(kind, patch.status_code)
                live = sorted(c.acked - c.deleted, key=lambda i: int(i.split("-")[2]))
                if len(live) > 2:  # the catalog keeps its size: a leak is then a leak
                    gone = await c.http.delete(f"/items/{live[0]}",
                                               headers={"X-API-Key": self.admin_key})
                    tally.add(kind, gone.status_code)
                    if gone.status_code == 204:
                        c.deleted.add(live[0])
        elif kind == "wrong_key":
            r = await c.http.patch(f"/items/{self.item_ids[0]}", json={"price": 1},
                                   headers={"X-API-Key": secrets.token_urlsafe(16)})
        elif kind == "bad_login":
            r = await c.http.post("/sessions", json={**ACCOUNT,
                                                     "password": secrets.token_urlsafe(12)})
        elif kind == "viewer":
            c.http.cookies.clear()
            r = await c.http.get(PAGES[c.cursor % len(PAGES)])
            c.cursor += 1
        elif kind == "guest_spam":
            c.http.cookies.clear()
            r = await c.http.post("/me/swipes", json={"item_id": self.item_ids[c.cursor % 50],
                                                      "liked": True})
            c.cursor += 1
        else:
            raise ValueError(kind)
        tally.add(kind, r.status_code)

    async def run(self, seconds: float, kinds: tuple[str, ...] | None = None) -> Tally:
        tally = Tally()
        stop = time.monotonic() + seconds

        async def loop(c: Client) -> None:
            pause = self.think if c.kind in WELL_BEHAVED else 0.0
            while time.monotonic() < stop:
                try:
                    await self.one(c, tally)
                except httpx.HTTPError as exc:
                    tally.broken[f"{c.kind}: {type(exc).__name__}"] += 1
                    await asyncio.sleep(0.05)
                if pause:
                    await asyncio.sleep(pause * random.uniform(0.5, 1.5))

        await asyncio.gather(*(loop(c) for c in self.clients
                               if kinds is None or c.kind in kinds))
        return tally

    async def lost_writes(self) -> tuple[int, int]:
        """(acknowledged, lost): every acked swipe and item read back from the server. A read
        answered 429 (the client's own request budget, spent by hundreds of read-backs after
        a soak) is asked again after its Retry-After: it says nothing about the write."""
        acked = lost = 0
        for c in self.clients:
            if c.kind == "swiper" and c.acked:
                r = await read_back(c.http, "/me/swipes")
                stored = {s["item_id"] for s in r.json()} if r.status_code == 200 else set()
                acked += len(c.acked)
                lost += len(c.acked - stored)
            elif c.kind == "writer":
                for item_id in c.acked:  # added, and deleted if that was acknowledged too
                    acked += 1 + (item_id in c.deleted)
                    r = await read_back(c.http, f"/items/{item_id}")
                    lost += r.status_code != (404 if item_id in c.deleted else 200)
        return acked, lost


async def read_back(http: httpx.AsyncClient, path: str, attempts: int = 20) -> httpx.Response:
    """GET `path`, waiting out 429s (at most `attempts` times, Retry-After seconds each)."""
    for _ in range(attempts):
        r = await http.get(path)
        if r.status_code != 429:
            return r
        await asyncio.sleep(min(float(r.headers.get("Retry-After", "1")), 10.0))
    return r


# -- reporting -----------------------------------------------------------------------------------


def p99(values: list[float]) -> float:
    return float(np.percentile(values, 99)) if values else float("nan")


def describe(name: str, tally: Tally, seconds: float) -> None:
    print(f"\n{name}: {tally.requests()} answers in {seconds:.0f} s "
          f"({tally.requests() / seconds:.0f}/s), searches p50 "
          f"{np.percentile(tally.search_ms, 50) if tally.search_ms else float('nan'):.0f} ms, "
          f"p99 {p99(tally.search_ms):.0f} ms over {len(tally.search_ms)} searches")
    for kind, counts in tally.status.items():
        print(f"  {kind:<11} " + ", ".join(f"{s}: {n}" for s, n in sorted(counts.items())))
    if tally.broken:
        print("  broken connections:", dict(tally.broken))


@dataclass
class Verdicts:
    lines: list[tuple[str, bool]] = field(default_factory=list)

    def check(self, what: str, ok: bool) -> None:
        self.lines.append((what, ok))

    def print(self) -> bool:
        print("\n== pass criteria ==")
        for what, ok in self.lines:
            print(f"  {'PASS' if ok else 'FAIL'}  {what}")
        passed = all(ok for _, ok in self.lines)
        print(f"\n{'PASS' if passed else 'FAIL'}: {sum(ok for _, ok in self.lines)} of "
              f"{len(self.lines)} criteria met")
        return passed


def guest_bound(settings: Settings, mix: dict[str, int], elapsed: float) -> int:
    """Most guests the server may hold: one per swiper, and per cookieless writer its burst
    plus what its rate adds over the time a guest can live (TTL + a cleanup round)."""
    window = min(elapsed, settings.guest_ttl.total_seconds()
                 + settings.cleanup_interval.total_seconds())
    per_spammer = settings.new_guests_burst + settings.new_guests_per_minute * window / 60
    return mix["swiper"] + int(mix["guest_spam"] * per_spammer) + 1


# -- main ----------------------------------------------------------------------------------------


async def soak(load: Load, seconds: float, server_pid: int,
               samples: list[tuple[float, float]], by_kind: list[dict[str, float]]) -> Tally:
    start = time.monotonic()

    def take() -> None:
        kinds = rss_by_kind(server_pid)
        samples.append((time.monotonic() - start, sum(kinds.values())))
        by_kind.append(kinds)

    async def sample() -> None:
        while time.monotonic() - start < seconds:
            take()
            await asyncio.sleep(5.0)

    sampler = asyncio.create_task(sample())
    tally = await load.run(seconds)
    await sampler
    take()
    return tally


async def drive(args: argparse.Namespace, base: str, work: Path, server: subprocess.Popen[bytes],
                settings: Settings, admin_key: str) -> bool:
    ids, photos = catalog_photos(work, args.queries, args.seed)
    mix = dict(MIX)
    async with httpx.AsyncClient(base_url=base, timeout=120) as setup:
        made = await setup.post("/accounts", json=ACCOUNT)
        assert made.status_code == 201, made.text
    load = Load(base, photos, ids, admin_key, args.think, mix)
    verdicts = Verdicts()
    try:
        await load.run(3.0, ("searcher",))  # warm-up
        rows0 = await asyncio.to_thread(count_rows, work)
        idle = await load.run(args.idle, ("searcher",))
        describe(f"idle: {mix['searcher']} searchers alone", idle, args.idle)
        t_mix = time.monotonic()
        mixed = await load.run(args.seconds)
        mix_s = time.monotonic() - t_mix
        describe(f"mix: {sum(mix.values())} clients", mixed, mix_s)
        acked, lost = await load.lost_writes()
        rows1 = await asyncio.to_thread(count_rows, work)
        print(f"  writes acknowledged {acked}, lost {lost}; rows before {rows0}, after {rows1}")
        bound1 = guest_bound(settings, mix, mix_s)
        verdicts.check(f"mix: 0 answers >= 500 ({mixed.server_errors()}) and 0 broken "
                       f"connections ({sum(mixed.broken.values())})",
                       mixed.server_errors() == 0 and not mixed.broken)
        verdicts.check(f"mix: 0 lost acknowledged writes ({lost} of {acked})",
                       lost == 0 and (acked > 0 or not mix["swiper"] + mix["writer"]))
        ratio = p99(mixed.search_ms) / p99(idle.search_ms)
        verdicts.check(f"mix: searchers' p99 {p99(mixed.search_ms):.0f} ms <= 2x idle p99 "
                       f"{p99(idle.search_ms):.0f} ms (ratio {ratio:.2f})", ratio <= 2.0)
        verdicts.check(f"mix: guests {rows1.guests} <= bound {bound1}, sessions "
                       f"{rows1.sessions} <= guests + accounts x {settings.sessions_per_user}",
                       rows1.guests <= bound1 and rows1.sessions
                       <= rows1.guests + rows1.accounts * settings.sessions_per_user)
        if args.soak > 0:
            samples: list[tuple[float, float]] = []
            by_kind: list[dict[str, float]] = []
            t_soak = time.monotonic()
            soaked = await soak(load, args.soak, server.pid, samples, by_kind)
            soak_s = time.monotonic() - t_soak
            describe("soak", soaked, soak_s)
            acked2, lost2 = await load.lost_writes()
            rows2 = await asyncio.to_thread(count_rows, work)
            series = RssSeries(samples, span=min(60.0, soak_s / 5))
            first, last = series.first_floor(), series.last_floor()
            growth = series.growth(first, last)
            start_mib, end_mib = samples[0][1], samples[-1][1]
            median0 = float(np.median(series.window(0, series.span)))
            median1 = float(np.median(series.window(soak_s - series.span, soak_s)))
            print("  server RSS (MiB) every 5 s: "
                  + " ".join(f"{m:.0f}" for _, m in samples))
            print("  by process, start -> end: " + ", ".join(
                f"{k} {by_kind[0][k]:.0f} -> {by_kind[-1][k]:.0f}" for k in by_kind[0]))
            print(f"  start {start_mib:.0f}, end {end_mib:.0f}, min "
                  f"{min(m for _, m in samples):.0f}, max {max(m for _, m in samples):.0f} "
                  f"MiB; floor (lowest of each {series.span:.0f} s) "
                  + " ".join(f"{m:.0f}" for _, m in series.floors())
                  + f", slope {series.floor_slope():+.1f} MiB/min")
            print(f"  growth: floor {growth:+.1f} % ({first:.0f} -> {last:.0f}), end vs start "
                  f"{series.growth(start_mib, end_mib):+.1f} %, median of the last "
                  f"{series.span:.0f} s vs the first {series.growth(median0, median1):+.1f} "
                  f"% ({median0:.0f} -> {median1:.0f}); rows after {rows2}")
            bound2 = guest_bound(settings, mix, mix_s + soak_s)
            verdicts.check(f"soak: 0 answers >= 500 ({soaked.server_errors()}) and 0 broken "
                           f"connections ({sum(soaked.broken.values())})",
                           soaked.server_errors() == 0 and not soaked.broken)
            verdicts.check(f"soak: 0 lost acknowledged writes ({lost2} of {acked2})",
                           lost2 == 0 and (acked2 > 0 or not mix["swiper"] + mix["writer"]))
            verdicts.check(f"soak: server RSS floor growth {growth:+.1f} % < 5 % ({first:.0f} "
                           f"-> {last:.0f} MiB; end vs start "
                           f"{series.growth(start_mib, end_mib):+.1f} %)", growth < 5.0)
            verdicts.check(f"soak: guests {rows2.guests} <= bound {bound2}, sessions "
                           f"{rows2.sessions} <= guests + accounts x "
                           f"{settings.sessions_per_user}",
                           rows2.guests <= bound2 and rows2.sessions
                           <= rows2.guests + rows2.accounts * settings.sessions_per_user)
            print(f"  searchers' p99 during the soak: {p99(soaked.search_ms):.0f} ms")
    finally:
        await load.close()
    return verdicts.print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog", type=Path, help="catalog to copy (default: build the sample)")
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the mix")
    ap.add_argument("--soak", type=float, default=300.0, help="length of the soak (0: none)")
    ap.add_argument("--idle", type=float, default=20.0, help="length of the idle baseline")
    ap.add_argument("--think", type=float, default=1.0,
                    help="mean pause of a well-behaved client between requests (s)")
    ap.add_argument("--guest-ttl", type=int, default=120, help="the server's guest TTL (s)")
    ap.add_argument("--queries", type=int, default=100, help="distinct query photos")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mix", default="",
                    help="clients per kind instead of the default, e.g. viewer=0,searcher=4 "
                    f"(kinds: {', '.join(MIX)})")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress in logs
    for part in filter(None, args.mix.split(",")):
        kind, _, n = part.partition("=")
        if kind not in MIX or not n.isdigit():
            ap.error(f"--mix {part!r}: expected KIND=N with KIND one of {', '.join(MIX)}")
        MIX[kind] = int(n)
    random.seed(args.seed)

    print(f"{datetime.now(UTC).isoformat(timespec='seconds')}  {os.cpu_count()} cores; "
          f"other processes kept {busy_cores_others(2.0, {os.getpid()}):.2f} cores busy "
          "just before the run")
    tmp = Path(tempfile.mkdtemp(prefix="lookalike-bench-abuse-"))
    try:
        work = tmp / "catalog"
        make_catalog(args.catalog, work)
        admin_key = secrets.token_urlsafe(24)
        env = {
            "LOOKALIKE_ADMIN_KEY_HASH": hash_admin_key(admin_key),
            "LOOKALIKE_GUEST_TTL": str(args.guest_ttl),
            "LOOKALIKE_CLEANUP_INTERVAL": "5",
        }
        settings = Settings(catalog_dir=work, guest_ttl=timedelta(seconds=args.guest_ttl),
                            cleanup_interval=timedelta(seconds=5))
        port = free_port()
        server = start_server(work, port, env, tmp / "server.log")
        try:
            print(f"server pid {server.pid} on 127.0.0.1:{port}, RSS {rss_mib(server.pid):.0f} "
                  f"MiB; limits: failed auth {settings.auth_failures_burst} + "
                  f"{settings.auth_failures_per_minute}/min, new guests "
                  f"{settings.new_guests_burst} + {settings.new_guests_per_minute}/min per "
                  f"client; argon2 {settings.hash_concurrency} at once; guest TTL "
                  f"{args.guest_ttl} s")
            passed = asyncio.run(drive(args, f"http://127.0.0.1:{port}", work, server,
                                       settings, admin_key))
            print(f"other processes kept {busy_cores_others(2.0, {os.getpid(), server.pid}):.2f}"
                  " cores busy just after the run (shared machine: timings are noisy)")
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
            log = (tmp / "server.log").read_text()
            if "Traceback" in log or "ERROR" in log:
                print("server log (tail):\n" + log[-3000:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
