"""README.md and docs/*.md hold no dead end: every relative link reaches a file (and, with `#anchor`, a heading of
it), every `adapterops ...` command they name exists with the options it is given, and docs/configuration.md is
what `adapterops config-fields --markdown` prints now."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from urllib.parse import unquote

import typer.main

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^ {0,3}(```|~~~)")
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
CODE_SPAN = re.compile(r"(?<![`\\])(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
# `adapterops` where a shell command starts: a line, a span, after a separator or "Run with:", past
# `VAR=value` assignments and a path such as .venv/bin/ (not `createdb -O adapterops` or /srv/adapterops)
COMMAND = re.compile(r"(?:^|[|;&(`]|:[ \t])[ \t]*(?:\$[ \t]+)?(?:[A-Za-z_]\w*=\S*[ \t]+)*(?:[^\s=`]*/)?"
                     r"adapterops(?:[ \t]+([^\n`]*)|(?=[`\n]|$))", re.MULTILINE)
WORD = re.compile(r"[a-z][a-z0-9-]*")
SHELL_BREAKS = {"|", "||", "&&", ";", "&", ">", ">>", "<", "2>&1"}


def doc_files(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def split_code(text: str) -> tuple[str, list[str]]:
    """(the prose with fenced blocks blanked, the code blocks' lines with `\\` continuations joined)."""
    prose, blocks, block, fence = [], [], [], None
    for line in text.splitlines():
        opening = FENCE.match(line)
        if fence is None and opening:
            fence = opening.group(1)
        elif fence is not None and line.strip().startswith(fence):
            blocks.append(re.sub(r"\\\n", " ", "\n".join(block)))
            block, fence = [], None
        elif fence is not None:
            block.append(line)
        else:
            prose.append(line)
            continue
        prose.append("")
    return "\n".join(prose), blocks


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text, lower case, punctuation dropped, each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The heading anchors of a markdown file, repeated headings numbered as GitHub does (`-1`, `-2`)."""
    prose, _ = split_code(path.read_text(encoding="utf-8"))
    found, seen = set(), {}
    for line in prose.splitlines():
        if match := HEADING.match(line):
            slug = github_slug(match.group(1))
            found.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return found


def broken_links(files: list[Path], root: Path = ROOT) -> list[str]:
    """`file: target (why)` for each relative link to a missing file or a missing heading."""
    problems = []
    for path in files:
        prose, _ = split_code(path.read_text(encoding="utf-8"))
        prose = CODE_SPAN.sub("", prose)
        for target in LINK.findall(prose) + REFERENCE.findall(prose):
            if re.match(r"[a-z][a-z0-9+.-]*:|//", target, re.IGNORECASE):
                continue
            name, _, anchor = unquote(target).partition("#")
            linked = (path.parent / name).resolve() if name else path
            where = f"{path.relative_to(root)}: {target}"
            if not linked.is_relative_to(root.resolve()) or not linked.exists():
                problems.append(f"{where} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                problems.append(f"{where} (no heading #{anchor} in {linked.relative_to(root.resolve())})")
    return problems


def command_mentions(text: str) -> list[list[str]]:
    """The words after each `adapterops` in code spans and code blocks, comments and quoted spaces handled."""
    prose, blocks = split_code(text)
    found = []
    for code in [" ".join(span.splitlines()) for _, span in CODE_SPAN.findall(prose)] + blocks:
        for rest in COMMAND.findall(code):
            rest = re.split(r"(?:^|\s)#", rest)[0]
            try:
                words = shlex.split(rest)
            except ValueError:
                words = rest.split()
            found.append(words)
    return found


def command_problems(words: list[str], root) -> list[str]:
    """What in `adapterops WORDS` the CLI does not have: a command or sub-command, or an option of it."""
    node, path = root, ["adapterops"]
    words = [w.strip("[]()") for w in words]
    for i, word in enumerate(words + [""]):
        subcommands = getattr(node, "commands", None) or {}
        if not subcommands or not WORD.fullmatch(word.split("|")[0].split("/")[0]):
            break
        names = re.split(r"[|/]", word)
        unknown = [name for name in names if name not in subcommands]
        if unknown:
            return [f"`{' '.join(path + [unknown[0]])}` is not a command"]
        if len(names) > 1:
            return []
        node, path = subcommands[word], path + [word]
    options = {opt for param in node.params for opt in param.opts} | {"--help"}
    problems = []
    for word in words[i:]:
        if word in SHELL_BREAKS or word.startswith(">"):
            break
        option = word.split("=")[0]
        if option.startswith("--") and len(option) > 2 and option not in options:
            problems.append(f"`{' '.join(path)}` has no option {option}")
    return problems


def unknown_commands(files: list[Path], root: Path = ROOT) -> list[str]:
    """`file: problem` for every command mention the CLI does not have."""
    from cli.main import app

    cli = typer.main.get_command(app)
    return [f"{path.relative_to(root)}: {problem}" for path in files
            for words in command_mentions(path.read_text(encoding="utf-8"))
            for problem in command_problems(words, cli)]


def test_a_link_to_a_missing_file_is_reported(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "here.md").write_text("# Here\n")
    page = tmp_path / "README.md"
    page.write_text("[ok](docs/here.md) [gone](docs/gone.md) [up](../outside.md) `[code](nope.md)`\n"
                    "```\n[block](nope.md)\n```\n[ref]: docs/missing.md\n[web](https://example.com/x.md)\n")
    assert broken_links([page], tmp_path) == ["README.md: docs/gone.md (no such file)",
                                              "README.md: ../outside.md (no such file)",
                                              "README.md: docs/missing.md (no such file)"]


def test_an_anchor_that_matches_no_heading_is_reported(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# Trust and failure: what `a` gate trusts\n## Notes\n## Notes\n"
                                              "```\n# not a heading\n```\n")
    page = tmp_path / "README.md"
    page.write_text("## Set-up: two commands\n[a](docs/page.md#trust-and-failure-what-a-gate-trusts) "
                    "[b](docs/page.md#notes-1) [c](#set-up-two-commands) [d](docs/page.md#not-a-heading) "
                    "[e](#setup)\n")
    assert broken_links([page], tmp_path) == [
        "README.md: docs/page.md#not-a-heading (no heading #not-a-heading in docs/page.md)",
        "README.md: #setup (no heading #setup in README.md)"]


def test_a_made_up_command_or_option_is_reported(tmp_path):
    page = tmp_path / "README.md"
    page.write_text("Run `adapterops corpus frobnicate 3`, `.venv/bin/adapterops status --name x`, "
                    "`adapterops corpus approve|reject`, `adapterops/config.py` and `adapterops label` files.\n"
                    "```bash\nadapterops fly configs/x.yaml   # or adapterops  run\n"
                    "adapterops train configs/x.yaml \\\n    --resume --fast   # --not-checked\n"
                    "adapterops corpus approve 3 --as \"a --b\" --yes | tee log\n```\n")
    assert unknown_commands([page], tmp_path) == ["README.md: `adapterops corpus frobnicate` is not a command",
                                                  "README.md: `adapterops fly` is not a command",
                                                  "README.md: `adapterops train` has no option --fast"]


def test_links_in_the_readme_and_docs_reach_their_files_and_headings():
    assert broken_links(doc_files()) == []


def test_commands_in_the_readme_and_docs_exist():
    assert unknown_commands(doc_files()) == []


def test_the_configuration_page_is_generated_from_the_config_models():
    from cli.commands.config_fields import fields_markdown

    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == fields_markdown(), ("docs/configuration.md is out of date: run "
                                            "`adapterops config-fields --markdown > docs/configuration.md`")
