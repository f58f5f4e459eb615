"""host/fleet/tegrastats.py on REAL tegrastats lines (tests/data/tegrastats/*.txt, sources in each file),
the INA3221 sysfs power parser, and the agent's one-line tegrastats reader (never blocks)."""
from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import List

import pytest

from edge_bench.fleet.tegrastats import parse_nvpmodel, parse_power_sysfs, parse_tegrastats

DATA = Path(__file__).resolve().parent / "data" / "tegrastats"


def lines(name: str) -> List[str]:
    return [ln for ln in (DATA / name).read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def test_every_sample_file_has_a_source_and_parses() -> None:
    files = sorted(DATA.glob("*.txt"))
    assert len(files) >= 6
    for f in files:
        text = f.read_text()
        assert "Source:" in text, f"{f.name} must say where its lines come from"
        for ln in lines(f.name):
            d = parse_tegrastats(ln)
            assert d and d["ram"]["total_mb"] > 0 and d["cpu"], (f.name, ln)
            assert d["temps_c"], f.name


def test_jetpack4_tx2_root_power_without_units_and_negative_temps() -> None:
    d = parse_tegrastats(lines("jp4_tx2.txt")[0])
    assert d["ram"] == {"used_mb": 4722, "total_mb": 7844, "lfb": "1x512kB"}
    assert d["swap"] == {"used_mb": 149, "total_mb": 1024, "cached_mb": 7}
    assert len(d["cpu"]) == 6 and d["cpu"][0] == {"load_pct": 55, "freq_mhz": 2035}
    assert d["emc"] == {"load_pct": 2, "freq_mhz": 1866}
    assert d["gr3d"] == {"load_pct": 37, "freq_mhz": 1300}
    assert d["temps_c"]["BCPU"] == -45.0 and d["temps_c"]["Tdiode"] == 46.75
    assert d["temps_c"]["thermal"] == 46.4
    assert d["temp_max_c"] == 47.5  # AO; PMIC@100C (a fixed reading) is not the SoC
    assert d["power_mw"]["VDD_IN"] == {"cur_mw": 14025, "avg_mw": 14416, "max_mw": None}
    assert d["power_mw"]["VDD_DDR"]["cur_mw"] == 2702
    assert set(d["power_mw"]) == {"VDD_IN", "VDD_CPU", "VDD_GPU", "VDD_SOC", "VDD_WIFI", "VDD_DDR"}
    assert d["input_power_mw"] == 14025
    assert d["engines"]["APE"] == {"freq_mhz": 150} and d["engines"]["NVENC"] == {"freq_mhz": 716}
    assert d["mts"] == {"fg_pct": 0, "bg_pct": 0}


def test_jetpack4_nano_pom_rails_and_iram() -> None:
    d = parse_tegrastats(lines("jp4_nano.txt")[0])
    assert d["iram"] == {"used_kb": 0, "total_kb": 252}
    assert d["power_mw"]["POM_5V_IN"] == {"cur_mw": 4520, "avg_mw": 4680, "max_mw": None}
    assert d["power_mw"]["POM_5V_GPU"]["cur_mw"] == 0
    assert d["input_power_mw"] == 4520
    assert [c["freq_mhz"] for c in d["cpu"]] == [1036] * 4
    assert d["cpu_load_pct"] == 29.2
    assert d["temps_c"]["CPU"] == 60.5 and d["temps_c"]["GPU"] == 59.0
    assert "RAM" not in d["power_mw"] and "SWAP" not in d["power_mw"]  # 1180/3965MB is not a rail


def test_jetpack4_without_root_has_no_power_and_cores_off() -> None:
    before, after = (parse_tegrastats(ln) for ln in lines("jp4_tx2nx_nonroot.txt"))
    assert before["cpu"][1] is None and before["cpu"][2] is None  # "off"
    assert before["cpu_freq_mhz_max"] == 345 and after["cpu_freq_mhz_max"] == 2035
    assert before["emc"] == {"load_pct": 0, "freq_mhz": None}
    assert "power_mw" not in before and "input_power_mw" not in before
    assert before["temps_c"]["BCPU"] == 50.5


def test_jetpack4_xavier_nx_root_and_non_root() -> None:
    user, root = (parse_tegrastats(ln) for ln in lines("jp4_xavier_nx.txt"))
    assert "power_mw" not in user
    assert root["power_mw"]["VDD_CPU_GPU_CV"] == {"cur_mw": 410, "avg_mw": 426, "max_mw": None}
    assert root["input_power_mw"] == 3528
    assert root["gr3d"] == {"load_pct": 0, "freq_mhz": 114}
    assert root["engines"]["VIC"] == {"load_pct": 0, "freq_mhz": 115}
    assert root["mts"] == {"fg_pct": 0, "bg_pct": 3}


def test_jetpack5_mw_units_and_gpc_brackets() -> None:
    d = parse_tegrastats(lines("jp5_xavier_nx.txt")[0])
    assert d["power_mw"]["VDD_IN"] == {"cur_mw": 5079, "avg_mw": 5079, "max_mw": None}
    assert d["input_power_mw"] == 5079
    assert d["gr3d"] == {"load_pct": 0, "freq_mhz": 510, "freqs_mhz": [510]}
    assert d["engines"]["VIC"] == {"freq_mhz": 601}
    assert d["cpu"][4] is None and d["cpu"][5] is None
    assert d["ram"]["lfb"] == "6x1MB"


def test_jetpack6_orin_nano() -> None:
    d = parse_tegrastats(lines("jp6_orin_nano.txt")[0])
    assert len(d["cpu"]) == 6
    assert d["power_mw"]["VDD_IN"] == {"cur_mw": 2235, "avg_mw": 1684, "max_mw": None}
    assert d["power_mw"]["VDD_4V0_WIFI"]["cur_mw"] == 0
    assert d["engines"]["NVDEC"] == {"freq_mhz": 0} and d["engines"]["VIC"]["freq_mhz"] == 1152
    assert d["temps_c"]["thermal"] == 38.12 and d["temps_c"]["Tboard"] == 31.0


def test_timestamped_orin_with_max_columns_and_lowercase_sensors() -> None:
    d = parse_tegrastats(lines("jp6_agx_orin_timestamped.txt")[0])
    assert d["timestamp"] == "07-25-2026 09:08:28"
    assert len(d["cpu"]) == 12 and d["cpu_freq_mhz_max"] == 2201
    assert d["gr3d"] == {"load_pct": 12, "freq_mhz": 1300, "freqs_mhz": [1300, 1300]}
    assert d["power_mw"]["VDD_GPU_SOC"] == {"cur_mw": 5139, "avg_mw": 5139, "max_mw": 5139}
    assert d["input_power_mw"] is None  # AGX Orin has no whole-board input rail in tegrastats
    assert d["temps_c"] == {"cpu": 52.968, "soc2": 48.406, "soc0": 49.531, "gpu": 47.625}
    assert d["engines"]["NVENC0"] == "off" and d["engines"]["PVA0"] == "off"
    assert d["engines"]["APE"] == {"freq_mhz": 174}


def test_absent_sensor_and_garbage() -> None:
    d = parse_tegrastats("RAM 1/2MB CPU [1%@2] CV0@-256C GPU@40C")
    assert d["temps_c"] == {"GPU": 40.0}
    assert parse_tegrastats("") is None and parse_tegrastats(None) is None
    assert parse_tegrastats("tegrastats: command failed") == {}


def test_power_sysfs_jetpack4_iio_and_jetpack5_hwmon() -> None:
    iio = "/sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0"
    jp4 = {f"{iio}/rail_name_0": "POM_5V_IN", f"{iio}/in_power0_input": "4520",
           f"{iio}/rail_name_1": "POM_5V_GPU", f"{iio}/in_power1_input": "0"}
    assert parse_power_sysfs(jp4) == {"POM_5V_IN": 4520, "POM_5V_GPU": 0}
    hw = "/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"
    jp5 = {f"{hw}/in1_label": "VDD_IN", f"{hw}/in1_input": "5000", f"{hw}/curr1_input": "990",
           f"{hw}/in2_label": "VDD_CPU_GPU_CV", f"{hw}/in2_input": "5000",
           f"{hw}/curr2_input": "120", f"{hw}/in3_label": "NC", f"{hw}/in3_input": "0",
           f"{hw}/curr3_input": "0", f"{hw}/in7_label": "sum of shunt voltages",
           f"{hw}/in7_input": "12"}
    assert parse_power_sysfs(jp5) == {"VDD_IN": 4950, "VDD_CPU_GPU_CV": 600}
    assert parse_power_sysfs(None) == {} and parse_power_sysfs({}) == {}


def test_nvpmodel_query() -> None:
    assert parse_nvpmodel("NV Power Mode: MAXN\n0") == {"mode": "MAXN", "id": 0}
    assert parse_nvpmodel("NV Power Mode: 15W\n2\n") == {"mode": "15W", "id": 2}
    assert parse_nvpmodel(None) is None and parse_nvpmodel("garbage") is None


# ------------------------------------------------------------------- agent side (raw collection)

def _script(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def test_agent_reads_one_tegrastats_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_bench_agent import facts as A
    line = lines("jp5_xavier_nx.txt")[0]
    _script(tmp_path / "tegrastats",
            f'[ "$1" = --interval ] || exit 9\nwhile true; do echo "{line}"; sleep 0.1; done\n')
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert A.tegrastats_line() == line


def test_agent_never_blocks_on_a_hung_tegrastats(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_bench_agent import facts as A
    pidfile = tmp_path / "pid"
    # prints half a line and hangs (a child sleep keeps the pipe open too)
    _script(tmp_path / "tegrastats", f'echo $$ > {pidfile}\nprintf "RAM 1/2MB"\nsleep 300\n')
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    t0 = time.monotonic()
    assert A.tegrastats_line(timeout=1.0) is None
    assert time.monotonic() - t0 < 4.0
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed with its process group, not left behind


def test_agent_jetson_facts_from_a_fake_sysfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_bench_agent import facts as A
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "nv_tegra_release").write_text("# R35 (release), REVISION: 4.1, GCID: 1\n")
    hw = root / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1"
    hw.mkdir(parents=True)
    for name, text in {"in1_label": "VDD_IN", "in1_input": "5000", "curr1_input": "800"}.items():
        (hw / name).write_text(text + "\n")
    monkeypatch.setenv(A.SYSROOT_ENV, str(root))
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))  # no tegrastats / nvpmodel
    facts = A.jetson_facts()
    assert facts["l4t"].startswith("# R35")
    assert facts["tegrastats"] is None and facts["nvpmodel"] is None
    assert parse_power_sysfs(facts["power_sysfs"]) == {"VDD_IN": 4000}
    assert all(k.startswith("/sys/") for k in facts["power_sysfs"])  # device paths, not the root
    monkeypatch.setenv(A.SYSROOT_ENV, str(tmp_path / "empty"))
    assert A.jetson_facts() is None  # not a Jetson
