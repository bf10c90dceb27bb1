"""docs/walkthrough.md and the README cannot drift from the code: every line of code the
walkthrough quotes stands, as written, in the function referenced before it."""
import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE = re.compile(r"`((?:minigan|kernels|demos)/[\w/]+\.py):([\w.]+)`")
SPAN = re.compile(r"`([^`\n]+)`")
CODE = re.compile(r"[A-Za-z_]\w*(\.\w+|\[[^\]]*\])*\(|[\w\]]\s*[-+*/]?=\s")  # a call, or an assignment


def source_of(path, dotted):
    """The source text of the definition `dotted` (Class.method or function) in `path`."""
    tree = ast.parse((REPO / path).read_text())
    node = tree
    for part in dotted.split("."):
        node = next(n for n in ast.iter_child_nodes(node)
                    if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.name == part)
    return ast.get_source_segment((REPO / path).read_text(), node)


def quotes(text):
    """(quote, the reference before it) for each code span that is code, in order."""
    last = None
    for m in SPAN.finditer(text):
        span = m.group(0)
        ref = REFERENCE.fullmatch(span)
        if ref:
            last = ref.groups()
        elif CODE.search(m.group(1)) and not m.group(1).startswith(("python ", "--")):
            yield m.group(1), last


def normalised(code):
    return re.sub(r"\s+", " ", code)


def test_the_walkthrough_quotes_the_code_it_names():
    text = (REPO / "docs" / "walkthrough.md").read_text()
    found = list(quotes(text))
    assert len(found) >= 10, found  # the page quotes the step's lines
    for quote, ref in found:
        assert ref is not None, f"{quote!r} is quoted before any reference"
        assert normalised(quote) in normalised(source_of(*ref)), f"walkthrough.md quotes {quote!r} from {ref[0]}:" \
                                                                   f"{ref[1]}, which does not hold it"


def test_the_quote_check_catches_a_drifted_line():
    text = "`minigan/gan.py:GAN.d_update` runs `D.backward(dlogits, param_grads=False)`"
    (quote, ref), = quotes(text)
    assert normalised(quote) not in normalised(source_of(*ref))
