import pandas as pd
import pytest

from adapterops.errors import AdapterOpsError
from tasks.corpus import check_accounting, corpus_digest, records_digest


def records(n, offset=0):
    return pd.DataFrame({"id": [f"r{i + offset}" for i in range(n)], "source": "email", "timestamp": "t",
                         "prompt": [f"p{i}" for i in range(n)], "completion": "c"})


def test_digest_ignores_row_order_but_not_content_settings_or_contract():
    train, held = records(5), records(2, 100)
    digest = corpus_digest(train, held, {"k": 1}, 1)
    assert digest == corpus_digest(train.iloc[::-1], held, {"k": 1}, 1)
    changed = train.copy()
    changed.loc[0, "prompt"] = "edited"
    assert digest != corpus_digest(changed, held, {"k": 1}, 1)
    assert digest != corpus_digest(train, held, {"k": 2}, 1)
    assert digest != corpus_digest(train, held, {"k": 1}, 2)
    assert digest != corpus_digest(held, train, {"k": 1}, 1)          # moving records across the split matters
    assert records_digest(train) != records_digest(held)


def test_accounting_must_add_up():
    check_accounting({"input": 10, "kept": 6, "duplicates": 3, "quarantined": 1})
    with pytest.raises(AdapterOpsError, match="does not add up"):
        check_accounting({"input": 10, "kept": 6, "duplicates": 3, "quarantined": 0})
    main = {"input": 10, "kept": 6, "duplicates": 3, "quarantined": 1}
    check_accounting(main | {"eval_input": 5, "eval": 4, "eval_quarantined": 1})
    with pytest.raises(AdapterOpsError, match="Eval record accounting"):
        check_accounting(main | {"eval_input": 5, "eval": 4, "eval_quarantined": 0})
