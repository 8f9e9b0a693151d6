"""Task variants: the same bug in other layouts and other words, still a real task."""

from groundup.tasks.check import check, load_task, python_on_path
from groundup.tasks.generate import generate_task
from groundup.tasks.oracle import record_one
from groundup.tasks.variants import LAYOUTS, SPLIT_LAYOUTS, SPLIT_PHRASINGS, relayout, vary


def test_every_layout_fails_as_given_and_the_oracle_fixes_it_with_the_real_tools(tmp_path):
    with python_on_path():
        for tier in (1, 2):
            task = generate_task(5, tier, "train")
            for layout in LAYOUTS:
                v = relayout(task, layout)
                assert {f for f in v.files if f.endswith(".py")} != set() and v.gold[0]["path"] in v.files
                info = load_task(v.write(tmp_path))
                assert not check(info, info.repo, restore=False).solved, layout
                row = record_one(info.dir, verify=True)           # raises if not solved
                assert row["messages"][1]["content"] == v.problem_statement
    flat = relayout(generate_task(5, 1, "train"), "flat")
    assert not any("/" in f for f in flat.files) and all(t.startswith("test_") for t in flat.fail_to_pass)


def test_held_out_variants_use_layouts_and_words_training_never_has():
    assert not set(SPLIT_LAYOUTS["train"]) & set(SPLIT_LAYOUTS["heldout"])
    assert not set(SPLIT_PHRASINGS["train"]) & set(SPLIT_PHRASINGS["heldout"])
    seen = set()
    for seed in range(12):
        task = generate_task(seed, 1, "heldout")
        v = vary(task)
        assert v.id.split("-")[-1] in SPLIT_LAYOUTS["heldout"] and v.gold[0]["old"] == task.gold[0]["old"]
        assert vary(task) == v                                          # deterministic
        seen.add(v.problem_statement.split()[0])
    assert len(seen) >= 2
