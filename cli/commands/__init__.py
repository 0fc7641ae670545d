"""The commands of `adapterops`, one module each; `get_commands()` is the one list the CLI registers.

Each entry is a command function or a Typer group. Modules import heavy libraries only inside the command
that needs them, so `adapterops --help` stays fast.
"""

from __future__ import annotations


def get_commands() -> list[tuple[str, object]]:
    """(name, command function or Typer group); `adapterops --help` lists the commands, then the groups, in this order."""
    from cli.commands import (
        config_fields,
        contract,
        corpus,
        dedup,
        evaluate,
        export,
        fit_check,
        inspect,
        keys,
        label,
        notify,
        release,
        run,
        serve,
        status,
        train,
        validate,
        watch,
    )

    return [("demo", run.demo), ("run", run.run), ("status", status.status), ("corpus", corpus.app),
            ("contract", contract.app), ("validate", validate.validate), ("fit-check", fit_check.fit_check),
            ("dedup", dedup.dedup), ("label", label.app), ("inspect", inspect.inspect),
            ("train", train.train), ("eval", evaluate.evaluate_version),
            ("release", release.app), ("serve", serve.serve), ("watch", watch.watch), ("export", export.export),
            ("keys", keys.app),
            ("notify", notify.app), ("config-fields", config_fields.config_fields)]
