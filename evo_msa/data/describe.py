"""`evo-msa data DATA`: what a dataset holds, or in one line what is wrong with it.

The file goes through the loader first (`load_pickle`), so whatever would stop a search stops
here with the same one-line UserError. The loader then replaces NaN and +-inf features by 0
(as MMSA does); to say how many there were, they are counted on the file as stored.
"""
from __future__ import annotations

import warnings

import numpy as np

from evo_msa.data.dataset import MODALITIES, SPLITS, MSAData
from evo_msa.data.loader import load_data, load_pickle, parse_data_spec
from evo_msa.data.safe_pickle import safe_load
from evo_msa.errors import brief

# keys of a split the loader reads; anything else (annotations, ...) is ignored
READ_KEYS = (set(MODALITIES) | {f"{m}_lengths" for m in MODALITIES} | {"id", "raw_text", "text_bert"}
             | {"regression_labels", "classification_labels", "regression_labels_T",
                "regression_labels_A", "regression_labels_V"})


def _as_array(value) -> np.ndarray | None:
    """A stored feature array as numbers (the loader accepted it, so this works)."""
    try:
        arr = np.asarray(value)
        return np.array(arr.tolist(), dtype=np.float64) if arr.dtype.kind == "O" else arr
    except (ValueError, TypeError):
        return None


def _labels(data: MSAData, split: str) -> dict:
    part = data.splits[split]
    if data.task == "regression":
        y = part.regression.astype(np.float64)
        return {"min": float(y.min()), "mean": float(y.mean()), "std": float(y.std()),
                "max": float(y.max())}
    counts = np.bincount(part.classification, minlength=data.num_classes)
    return {"counts": {name: int(n) for name, n in zip(data.label_names, counts)}}


def summary(spec: str, text_model: str | None = None, max_tokens: int = 50) -> dict:
    """A JSON-ready description of the data spec (a pickle or synthetic:NAME); raises the
    loader's one-line UserError when the file is not usable. With `text_model` (a pretrained
    encoder's directory or alias), the utterances as its tokenizer cuts them at `max_tokens`:
    token counts and how many are truncated; bad text is a UserError."""
    parsed = parse_data_spec(spec)
    raw = None
    if parsed.synthetic is not None:
        data = load_data(spec, normalize=False)
    else:
        with warnings.catch_warnings():
            # "replaced N non-finite values": counted below, per split and modality
            warnings.filterwarnings("ignore", message=".*non-finite values", category=UserWarning)
            data = load_pickle(parsed.path)
        raw = safe_load(parsed.path)
    out: dict = {"data": spec, "name": data.name, "task": data.task,
                 "modalities": list(data.modalities),
                 "dims": data.dims, "steps": data.seq_lens, "splits": {}, "notes": []}
    if data.task == "regression":
        out["scale"] = data.scale
    else:
        out["label_names"] = list(data.label_names)
    for s in SPLITS:
        part = data.splits[s]
        stored = raw[s] if raw is not None else {}
        info: dict = {"rows": len(part), "ids": "id" in stored if raw is not None else True,
                      "labels": _labels(data, s), "unimodal_labels": sorted(part.unimodal),
                      "features": {}}
        if raw is not None:
            info["not_read"] = sorted(k if isinstance(k, str) and len(k) <= 60 else brief(k)
                                      for k in stored if k not in READ_KEYS)
        for m in data.modalities:
            x, lengths = part.features[m], part.lengths[m]
            source = _as_array(stored[m]) if raw is not None else x
            if source is None or not np.issubdtype(source.dtype, np.number):
                source = x
            finite_kind = np.issubdtype(source.dtype, np.floating)
            info["features"][m] = {
                "shape": list(x.shape), "dtype": str(source.dtype),
                "nan": int(np.isnan(source).sum()) if finite_kind else 0,
                "inf": int(np.isinf(source).sum()) if finite_kind else 0,
                "zero_length": int((lengths == 0).sum()),
                "length_min": int(lengths.min()) if len(lengths) else 0,
                "length_max": int(lengths.max()) if len(lengths) else 0}
        info["text"] = _text(data, s, text_model, max_tokens)
        out["splits"][s] = info
    out["notes"] = _notes(out)
    return out


def _text(data: MSAData, split: str, text_model: str | None, max_tokens: int) -> dict:
    """Where the split's utterances come from and, with a tokenizer, their token counts."""
    part = data.splits[split]
    source = ("raw_text" if part.raw_text is not None
              else "text_bert" if part.text_bert is not None else None)
    out: dict = {"source": source}
    if text_model is not None:
        from evo_msa.data.text import load_tokenizer, tokenize

        tokens = tokenize(part, load_tokenizer(text_model), max_tokens, f"{data.name}: {split}")
        out.update(model=text_model, max_tokens=max_tokens, tokens_min=int(tokens.lengths.min()),
                   tokens_median=float(np.median(tokens.lengths)),
                   tokens_max=int(tokens.lengths.max()), truncated=tokens.truncated)
    return out


def _notes(info: dict) -> list[str]:
    """What a user should know before training on it (none of these stop the loader)."""
    notes = []
    for s, part in info["splits"].items():
        for m, f in part["features"].items():
            if f["nan"] or f["inf"]:
                notes.append(f"{s}/{m}: {f['nan']} NaN and {f['inf']} infinite values "
                             f"(read as 0)")
            if f["zero_length"]:
                notes.append(f"{s}/{m}: {f['zero_length']} of {part['rows']} sequences have "
                             f"length 0 (the model sees nothing of {m} for them)")
        text = part.get("text", {})
        if text.get("truncated"):
            notes.append(f"{s}: {text['truncated']} of {part['rows']} utterances are longer "
                         f"than {text['max_tokens']} tokens of {text['model']} (cut there)")
        for name, n in part["labels"].get("counts", {}).items():
            if n == 0:
                notes.append(f"{s}: no sample of class {name!r}")
    return notes


# ---- printing --------------------------------------------------------------------------------

def _grid(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
             for r in [header, *rows]]
    return "\n".join(lines)


def format_description(info: dict) -> str:
    """The summary as readable text: a header, the splits, the features, the notes."""
    splits = info["splits"]
    if info["task"] == "regression":
        kind = f"regression, sentiment scores in [-{info['scale']:g}, {info['scale']:g}]"
    else:
        kind = f"classification, {len(info['label_names'])} classes"
    mods = ", ".join(f"{m} (T={info['steps'][m]}, D={info['dims'][m]})"
                     for m in info["modalities"])
    lines = [f"{info['name']}  ({info['data']})", f"task        {kind}",
             f"modalities  {mods}", ""]
    if info["task"] == "regression":
        header = ["split", "rows", "label min", "mean", "std", "max", "unimodal labels", "ids"]
        rows = [[s, str(p["rows"])] + [f"{p['labels'][k]:.3f}" for k in ("min", "mean", "std",
                                                                           "max")]
                + [",".join(p["unimodal_labels"]) or "-", "yes" if p["ids"] else "generated"]
                for s, p in splits.items()]
    else:
        names = info["label_names"]
        header = ["split", "rows"] + names + ["ids"]
        rows = [[s, str(p["rows"])] + [str(p["labels"]["counts"][n]) for n in names]
                + ["yes" if p["ids"] else "generated"] for s, p in splits.items()]
    lines += [_grid(header, rows), ""]
    rows = []
    for m in info["modalities"]:
        for s, p in splits.items():
            f = p["features"][m]
            rows.append([m, s, "(" + ", ".join(map(str, f["shape"])) + ")", f["dtype"],
                         f"{f['length_min']}..{f['length_max']}", str(f["zero_length"]),
                         str(f["nan"]), str(f["inf"])])
    lines += [_grid(["modality", "split", "shape (N, T, D)", "stored as", "lengths",
                     "zero-length", "NaN", "inf"], rows)]
    texts = {s: p["text"] for s, p in splits.items() if p.get("text", {}).get("source")}
    if texts:
        rows = [[s, t["source"]] + ([f"{t['tokens_min']}..{t['tokens_max']}",
                                     f"{t['tokens_median']:g}", str(t["truncated"])]
                                    if "truncated" in t else []) for s, t in texts.items()]
        first = next(iter(texts.values()))
        header = ["split", "utterances"] + (["tokens", "median", f"cut at {first['max_tokens']}"]
                                            if "truncated" in first else [])
        lines += ["", _grid(header, rows)]
    ignored = sorted({k for p in splits.values() for k in p.get("not_read", [])})
    if ignored:
        lines += ["", f"not read    {', '.join(ignored)}"]
    lines += ["", "notes       " + ("\n            ".join(info["notes"]) if info["notes"]
                                   else "none: no missing values, no empty sequence")]
    return "\n".join(lines)
