"""The settings of the `redis` role: Rspamd's store (roles/redis/defaults/main.yml)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import Field

from hopthu.schema.base import CrossCheck, SettingsModel
from hopthu.schema.types import DebianPackage, Port, checked


def _loopback_bind(value: str) -> None:
    # redis.conf(5) `bind`: a leading '-' makes an address optional (Redis
    # starts even if it is not configured, e.g. ::1 in a host without IPv6).
    address = value.removeprefix("-")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError("is not an IP address (with an optional leading '-')") from None
    if not ip.is_loopback:
        raise ValueError(
            "is not a loopback address: Redis has no password here and must be reachable "
            "from this host only (roles/redis/README.md)"
        )


LoopbackBind = checked(
    str,
    "a loopback address, optionally with a leading '-' (optional: Redis starts without it), "
    "e.g. 127.0.0.1 or -::1",
    _loopback_bind,
)

_MEMORY = re.compile(r"^[1-9][0-9]*(kb|mb|gb)?$")


def _memory(value: str) -> None:
    if not _MEMORY.match(value):
        raise ValueError("is not a Redis memory size")


RedisMemory = checked(
    str,
    "a Redis memory size above zero: a whole number of bytes, or with kb, mb or gb "
    "(1024-based, lower case), e.g. 512mb or 2gb",
    _memory,
)

_SAVE = re.compile(r"^[1-9][0-9]* [1-9][0-9]*$")


def _save_point(value: str) -> None:
    if not _SAVE.match(value):
        raise ValueError("is not a save point 'SECONDS CHANGES'")


SavePoint = checked(
    str,
    "'SECONDS CHANGES': snapshot after SECONDS if at least CHANGES keys changed, "
    "e.g. '300 100'",
    _save_point,
)

EvictionPolicy = Literal[
    "volatile-ttl",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "noeviction",
]


class RedisSettings(SettingsModel):
    """Redis: Rspamd's store on the MX host (Bayes, greylisting, rate limits, history).

    Debian's redis-server, reachable on loopback only, with a memory limit
    and an eviction policy chosen for Rspamd's keys, and RDB snapshots so that
    the learned Bayes data survives a restart. roles/redis/README.md explains
    each decision.
    """

    namespace = "redis"

    redis__packages: list[DebianPackage] = Field(
        description="Debian's Redis server (redis-server; it pulls in redis-tools for redis-cli)."
    )
    redis__bind: Annotated[list[LoopbackBind], Field(min_length=1)] = Field(
        description=(
            "The addresses Redis listens on: loopback only. Rspamd on the same host is its "
            "only client, and Redis has no password here."
        )
    )
    redis__port: Port = Field(
        description="The TCP port (Redis's own 6379); rspamd__redis_servers names the same."
    )
    redis__maxmemory: RedisMemory = Field(
        description=(
            "The most memory Redis uses for data. When it is reached, keys are evicted by "
            "redis__maxmemory_policy; Rspamd's Bayes tokens expire on their own "
            "(rspamd__bayes_expire), so the limit is a safety net, not the working size."
        )
    )
    redis__maxmemory_policy: EvictionPolicy = Field(
        description=(
            "Which keys go when redis__maxmemory is reached. volatile-ttl: only keys with a "
            "TTL, the nearest expiry first (greylisting, rate-limit buckets, caches, old Bayes "
            "tokens), never the Bayes totals, which have none."
        )
    )
    redis__save: list[SavePoint] = Field(
        description=(
            "RDB snapshot points ('SECONDS CHANGES'), so learned Bayes data survives a "
            "restart; an empty list turns snapshots off (everything is lost on restart)."
        )
    )

    def cross_checks(self) -> Iterator[CrossCheck]:
        binds = [b.lstrip("-") for b in self.redis__bind]
        if "127.0.0.1" not in binds:
            yield CrossCheck(
                ("redis__bind",), self.redis__bind,
                "lacks 127.0.0.1, where Rspamd connects (rspamd__redis_servers)",
                "a list of loopback addresses that includes 127.0.0.1, e.g. "
                "['127.0.0.1', '-::1']",
            )
