"""Rewrites one generated section of a markdown file (docs/benchmarks.md), for the bench/*
report writers.

A section is the text between `<!-- NAME:begin -->` and `<!-- NAME:end -->`; nothing outside the
markers changes. Without markers the section is appended under its heading (the heading too unless
the file already has it); a missing file starts as `new_file_text`. A file with only one of the
markers is left alone (exit with a message: fix it by hand). The write is atomic (a temp file in
the same directory, then rename), so a reader never sees half a file.
"""
import os
import sys
import tempfile


def rewrite_section(path, name, heading, body, tool, new_file_text="# Ferry benchmarks\n"):
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
    else:
        text = new_file_text
    section = f"{begin}\n{body}{end}"
    b, e = text.find(begin), text.find(end)
    if b >= 0 and e > b:
        text = text[:b] + section + text[e + len(end):]
    elif b < 0 and e < 0:
        text = text.rstrip("\n") + "\n"
        if heading not in text:
            text += f"\n{heading}\n\n"
        text += section + "\n"
    else:
        sys.exit(f"{tool}: '{path}' has only one of the {name} markers; fix it by hand")
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".benchmarks.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
