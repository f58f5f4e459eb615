"""Was a result taken while the device was throttled? (host side; the agent reports raw facts)

Sources, and only these (a frequency below the maximum is NOT taken as throttling: governors
lower clocks for many reasons and the agent samples the clock after the loop, not under load):
  * Raspberry Pi `vcgencmd get_throttled` before and after the timed loop: a "now" flag
    (under-voltage, ARM frequency capped, throttled, soft temperature limit) in either reading,
    or a sticky "occurred since boot" flag that was clear before and set after.
  * Linux thermal cooling devices that cap clocks (cpufreq / devfreq cooling, Jetson's
    `*-balanced` throttle devices): `cur_state > 0` before or after. Fans are not throttling.
The decision is `device_info.throttled_during` (true / false / null when the device exposes
none of these) plus `device_info.throttle_reasons`; host/render/display.py shows "ok (throttled)".
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Tuple

from edge_bench_agent.protocol import describe_holder

#: vcgencmd flags that mean the clocks were (or are) held down right now
PI_NOW_FLAGS = ("under_voltage", "arm_freq_capped", "throttled", "soft_temp_limit")
_CLOCK_COOLING = re.compile(r"cpufreq|devfreq|balanced|throttl", re.IGNORECASE)
_NOT_THROTTLING = re.compile(r"fan|pwm", re.IGNORECASE)


def is_clock_cooling(kind: str) -> bool:
    """A cooling device that throttles clocks (not a fan)."""
    return bool(_CLOCK_COOLING.search(kind)) and not _NOT_THROTTLING.search(kind)


def _flags(reading: Any) -> Optional[set]:
    if not isinstance(reading, dict):
        return None
    value = reading.get("value")
    if isinstance(value, int):
        from edge_bench_agent.facts import decode_throttled  # one table of bit names
        return set(decode_throttled(value))
    return set(reading.get("flags") or [])


def pi_reasons(before: Any, after: Any) -> Tuple[bool, List[str]]:
    """(seen, reasons) from two vcgencmd get_throttled readings ({raw, value, flags})."""
    fb, fa = _flags(before), _flags(after)
    if fb is None and fa is None:
        return False, []
    reasons: List[str] = []
    for name in PI_NOW_FLAGS:
        when = [w for w, f in (("before", fb), ("after", fa)) if f and name in f]
        if when:
            reasons.append(f"pi {name} ({'/'.join(when)} the timed loop)")
    if fb is not None and fa is not None:
        for name in PI_NOW_FLAGS:
            occ = name + "_occurred"
            if occ in fa and occ not in fb:
                reasons.append(f"pi {occ} (set during the run)")
    return True, reasons


def cooling_reasons(before: Any, after: Any) -> Tuple[bool, List[str]]:
    """(seen, reasons) from two {type: {cur, max}} cooling-device readings."""
    seen = False
    reasons: List[str] = []
    for when, reading in (("before", before), ("after", after)):
        if not isinstance(reading, dict):
            continue
        for kind, state in sorted(reading.items()):
            if not is_clock_cooling(str(kind)) or not isinstance(state, dict):
                continue
            seen = True
            cur = state.get("cur")
            if isinstance(cur, int) and cur > 0:
                reasons.append(f"cooling device {kind} at state {cur}/{state.get('max')} ({when})")
    return seen, reasons


def throttle_decision(info: Optional[Dict[str, Any]]) -> Tuple[Optional[bool], List[str]]:
    """(throttled_during, reasons): None when the device exposes no throttling source."""
    if not info:
        return None, []
    pi_seen, pi = pi_reasons(info.get("throttled_before"), info.get("throttled"))
    cd_seen, cd = cooling_reasons(info.get("cooling_devices_before"), info.get("cooling_devices"))
    reasons = pi + cd
    if reasons:
        return True, reasons
    return (False if (pi_seen or cd_seen) else None), []


def annotate(result: Dict[str, Any]) -> Dict[str, Any]:
    """Add the host's decisions to a result's device_info, in place: throttled_during,
    throttle_reasons, and (Jetson) the parsed tegrastats line, power rails and nvpmodel."""
    info = result.get("device_info")
    if not isinstance(info, dict):
        return result
    during, reasons = throttle_decision(info)
    info["throttled_during"] = during
    info["throttle_reasons"] = reasons
    jetson = info.get("jetson")
    if isinstance(jetson, dict):
        from .tegrastats import parse_nvpmodel, parse_power_sysfs, parse_tegrastats
        try:
            info["tegrastats"] = parse_tegrastats(jetson.get("tegrastats"))
            info["power_rails_mw"] = parse_power_sysfs(jetson.get("power_sysfs")) or None
            info["nvpmodel"] = parse_nvpmodel(jetson.get("nvpmodel"))
        except Exception as e:  # noqa: BLE001 - a parser bug never loses a result
            info["tegrastats_error"] = f"{type(e).__name__}: {e}"
    return result


def describe_lock_holder(holder: Any) -> str:
    """'held by job J (pid P, since T) from controller user@host' from the agent's lock info
    (the agent's own wording: edge_bench_agent.protocol.describe_holder)."""
    return describe_holder(holder)
