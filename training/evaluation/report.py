"""Summaries of scored records: means per system, the fraction of the oracle, and each split's own breakdown
(what the split holds: impaired lips, several languages, noise at several SNRs, the registers of two talkers' voices,
the target's activity), as JSON-ready dicts, Markdown tables and a PNG."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from processing.pitch import HIGH_VOICE_HZ

CORE_METRICS = ("si_sdr", "si_sdri", "sdr", "sdri", "pesq", "stoi", "estoi")
SYSTEMS = ("model", "mixture", "audio_only", "oracle")


def _mean(values) -> float | None:
    values = [value for value in values if value is not None and not math.isnan(value)]
    return float(np.mean(values)) if values else None


def summarize(records: list[dict]) -> dict:
    """Means per system, the fraction of the oracle, and the breakdowns that what the split holds allows: SI-SDRi
    per impairment and impaired ratio where lips are impaired, per language where there are several, every metric
    per SNR (and SI-SDRi per noise type and SNR) where the target is in noise, SI-SDRi by the registers of the
    target's and the interferer's voices where there are talkers, and the activity-aware scores where the target's
    activity is known."""
    systems = [system for system in SYSTEMS if records and system in records[0]]
    metric_names = [name for name in CORE_METRICS if name in records[0]["model"]] if records else []
    summary = {
        "examples": len(records),
        "systems": {
            system: {name: _mean(r[system].get(name) for r in records) for name in metric_names} for system in systems
        },
    }
    model, oracle = summary["systems"]["model"].get("si_sdri"), summary["systems"].get("oracle", {}).get("si_sdri")
    summary["fraction_of_oracle"] = None if model is None or not oracle else model / oracle
    fields = [record["split_fields"] for record in records]
    if any(row.get("impairment") not in (None, "", "none") for row in fields):
        table = defaultdict(lambda: defaultdict(list))
        for record, row in zip(records, fields):
            table[row.get("impairment") or "none"][f"{float(row['impaired_ratio']):.1f}"].append(
                record["model"]["si_sdri"]
            )
        summary["si_sdri_by_impairment"] = {
            kind: {ratio: _mean(v) for ratio, v in sorted(ratios.items())} for kind, ratios in table.items()
        }
    if len({row.get("language") for row in fields}) > 1:
        table = defaultdict(list)
        for record, row in zip(records, fields):
            table[str(row.get("language"))].append(record)
        summary["by_language"] = {
            language: {system: {"si_sdri": _mean(r[system]["si_sdri"] for r in rows)} for system in systems}
            for language, rows in sorted(table.items())
        }
    if any(row.get("noise_type") not in (None, "", "none") for row in fields):
        by_snr, by_noise = defaultdict(list), defaultdict(lambda: defaultdict(list))
        for record, row in zip(records, fields):
            snr = f"{float(row['snr_db']):g}"
            by_snr[snr].append(record)
            by_noise[row["noise_type"]][snr].append(record["model"]["si_sdri"])
        order = sorted(by_snr, key=float)
        summary["by_snr"] = {
            snr: {
                system: {name: _mean(r[system].get(name) for r in by_snr[snr]) for name in metric_names}
                for system in systems
            }
            for snr in order
        }
        summary["si_sdri_by_noise"] = {
            kind: {snr: _mean(snrs[snr]) for snr in order if snr in snrs} for kind, snrs in sorted(by_noise.items())
        }
    if any("voice_pair" in record for record in records):  # talker mixtures: same-register pairs are the hard ones
        table = defaultdict(list)
        for record in records:
            if "voice_pair" in record:
                table[record["voice_pair"]].append(record)
        summary["high_voice_hz"] = HIGH_VOICE_HZ
        summary["by_voice_pair"] = {
            pair: {
                "examples": len(rows),
                **{system: {"si_sdri": _mean(r[system]["si_sdri"] for r in rows)} for system in systems},
            }
            for pair, rows in sorted(table.items())
        }
    if records and all("activity" in record for record in records):  # the split holds the target's activity
        summary["activity_aware"] = {
            system: {
                name: _mean(r["activity"][system][name] for r in records)
                for name in ("active_si_sdr", "silent_energy_db")
            }
            for system in systems
        }
    return summary


def markdown_report(results: dict) -> str:
    """The results as Markdown tables, one per split."""
    lines = [
        f"# Evaluation of `{results['model']}`",
        "",
        f"Data: `{results['data']}`; commit {results.get('commit', '?')}.",
        "",
    ]
    for split, summary in results["splits"].items():
        systems, names = list(summary["systems"]), list(next(iter(summary["systems"].values())))
        lines.append(f"## {split} ({summary['examples']} examples)")
        lines += markdown_table(
            None, ["system", *names], [[s, *(_cell(v[n]) for n in names)] for s, v in summary["systems"].items()]
        )
        if summary.get("fraction_of_oracle") is not None:
            lines += ["", f"Model SI-SDRi = {100 * summary['fraction_of_oracle']:.1f}% of the oracle's."]
        if "si_sdri_by_impairment" in summary:
            table = summary["si_sdri_by_impairment"]
            ratios = sorted({ratio for row in table.values() for ratio in row})
            lines += markdown_table(
                "Model SI-SDRi (dB) by impairment and impaired ratio:",
                ["impairment", *ratios],
                [[kind, *(_cell(row.get(r)) for r in ratios)] for kind, row in sorted(table.items())],
            )
        if "by_language" in summary:
            lines += markdown_table(
                "SI-SDRi (dB) by language:",
                ["language", *systems],
                [
                    [language, *(_cell(row[s]["si_sdri"]) for s in systems)]
                    for language, row in summary["by_language"].items()
                ],
            )
        if "by_voice_pair" in summary:
            lines += markdown_table(
                "SI-SDRi (dB) by the registers of the target and the (first) interfering voice (high: median pitch "
                f"of at least {HIGH_VOICE_HZ:g} Hz):",
                ["target-interferer", "examples", *systems],
                [
                    [pair, str(row["examples"]), *(_cell(row[s]["si_sdri"]) for s in systems)]
                    for pair, row in summary["by_voice_pair"].items()
                ],
            )
        if "by_snr" in summary:
            lines += markdown_table(
                "By SNR of the input (dB), every noise type together:",
                ["SNR", "system", *names],
                [
                    [snr, s, *(_cell(row[s][n]) for n in names)]
                    for snr, row in summary["by_snr"].items()
                    for s in systems
                ],
            )
            snrs = list(summary["by_snr"])
            lines += markdown_table(
                "Model SI-SDRi (dB) by noise type and SNR:",
                ["noise", *snrs],
                [[kind, *(_cell(row.get(snr)) for snr in snrs)] for kind, row in summary["si_sdri_by_noise"].items()],
            )
        if "wer" in summary:
            wer = {system: value for system, value in summary["wer"].items() if system != "by_snr"}
            lines += [
                "",
                f"WER by the recogniser `{results.get('asr')}`: "
                + ", ".join(f"{system} {100 * value:.1f}%" for system, value in wer.items()),
            ]
            if "by_snr" in summary["wer"]:
                lines += markdown_table(
                    None,
                    ["SNR", *(f"WER {system}" for system in wer)],
                    [[snr, *(f"{100 * row[s]:.1f}%" for s in wer)] for snr, row in summary["wer"]["by_snr"].items()],
                )
        if "activity_aware" in summary:
            lines += markdown_table(
                None,
                [
                    "system",
                    "SI-SDR where the target speaks (dB)",
                    "estimate energy where it is silent, vs. mixture (dB)",
                ],
                [
                    [s, _cell(row["active_si_sdr"]), _cell(row["silent_energy_db"])]
                    for s, row in summary["activity_aware"].items()
                ],
            )
        lines.append("")
    return "\n".join(lines)


def markdown_table(caption: str | None, header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table (after a blank line and its caption, if any), as lines."""
    lines = ["", caption, ""] if caption else [""]
    lines += ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _cell(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def impairment_curve_png(summary: dict, path: str) -> str:
    """SI-SDRi against impaired ratio, one line per impairment type, drawn with PIL."""
    from PIL import Image, ImageDraw

    curves = summary["si_sdri_by_impairment"]
    width, height, margin = 480, 300, 48
    values = [v for row in curves.values() for v in row.values() if v is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    high = high if high > low else low + 1.0
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([margin, 10, width - 10, height - margin], outline="black")
    colours = {"full_mask": (200, 30, 30), "occlusion": (30, 120, 200), "low_resolution": (40, 150, 60)}

    def point(ratio: float, value: float):
        x = margin + ratio * (width - 10 - margin)
        y = height - margin - (value - low) / (high - low) * (height - margin - 20)
        return x, y

    for index, (kind, row) in enumerate(sorted(curves.items())):
        points = [
            point(float(ratio), value)
            for ratio, value in sorted(row.items(), key=lambda item: float(item[0]))
            if value is not None
        ]
        colour = colours.get(kind, (0, 0, 0))
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        draw.text((margin + 8, 14 + 12 * index), kind, fill=colour)
    draw.text((margin, height - margin + 6), "impaired ratio 0 ... 1", fill="black")
    draw.text((4, 10), f"{high:.1f}", fill="black")
    draw.text((4, height - margin - 10), f"{low:.1f}", fill="black")
    draw.text((4, height - 20), "SI-SDRi (dB) of the model by impairment type", fill="black")
    image.save(path)
    return path
