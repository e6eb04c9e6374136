"""Exploration harness: UCB, log format, locks, proposer, resume after a kill (fake objective: < 10 s)."""

import json
import math
import sys

import pytest

from eirnn_fast.explore import (
    ROOT,
    Constraints,
    ExplorationInterrupted,
    ExplorationTree,
    ExploreConfig,
    Explorer,
    IterEntry,
    LockedParameterError,
    Mutation,
    RandomProposer,
    SearchSpaceError,
    parse_log,
    parse_mutation_line,
)

BASE = {
    "name": "t",
    "kind": "fake",
    "slots": 2,
    "iterations": 8,
    "seed": 3,
    "reward": {"metric": "score"},
    "classification": {
        "rules": [
            {"label": "V_rest success", "when": ["V_rest_R2 > 0.6", "connectivity_R2 > 0.8"]},
            {"label": "V_rest partial", "when": ["V_rest_R2 >= 0.3", "connectivity_R2 > 0.8"]},
        ],
        "default": "V_rest failed",
    },
    "base_config": {
        "lr": 1e-3,
        "lr_W": 6e-4,
        "recurrent_training": False,
        "time_step": 1,
        "hidden_dim": 80,
        "coeff_W_L2": 2.5e-6,
    },
    "search_space": {
        "lr": {"range": [1e-4, 1e-2], "log": True},
        "recurrent_training": [True, False],
        "time_step": {"range": [1, 10], "integer": True},
        "coeff_W_L2": {"values": [2.5e-6, 3e-6, 4e-6, 5e-6]},
    },
    "locked": {
        "hidden_dim": {"value": 80, "reason": "optimal"},
        "lr_W": {"value": 6e-4, "reason": "strict", "unless": ["recurrent_training == true"]},
    },
    "blocks": [
        {"name": "lr", "iterations": 4, "parameters": ["lr", "coeff_W_L2"]},
        {"name": "recurrent", "iterations": 4, "parameters": ["recurrent_training", "time_step"]},
    ],
    "robustness": {"slot": 1, "min_samples": 3, "final_reruns": 2},
    "fake": {"optimum": {"lr": 3e-3, "time_step": 3}, "noise": 0.05},
}


def cfg(**over):
    d = json.loads(json.dumps(BASE))
    d.update(over)
    return ExploreConfig.from_dict(d)


def hand_tree():
    t = ExplorationTree({"x": 0})
    n1 = t.add(ROOT, {"x": 1})
    n1.status, n1.reward = "done", 0.5
    n2 = t.add(ROOT, {"x": 2})
    n2.status, n2.reward = "done", 0.8
    n3 = t.add(1, {"x": 3})
    n3.status, n3.reward = "done", 0.9
    return t


def test_ucb_choice_matches_hand_computation():
    t = hand_tree()
    # c = 1: node1 0.7 + sqrt(ln3/2) = 1.4412; node2 0.8 + sqrt(ln3) = 1.8481; node3 0.9 + sqrt(ln2) = 1.7326
    s = t.ucb_scores(1.0)
    assert s[1] == pytest.approx(0.7 + math.sqrt(math.log(3) / 2))
    assert s[2] == pytest.approx(0.8 + math.sqrt(math.log(3)))
    assert s[3] == pytest.approx(0.9 + math.sqrt(math.log(2)))
    assert t.select_parent(1.0) == 2
    # c = 0.1: 0.7741, 0.9048, 0.9833 -> node 3
    assert t.select_parent(0.1) == 3
    # an in-flight child is a virtual visit: node 2 gets n=2, N_root=4 -> 0.8 + sqrt(ln4/2) = 1.6326 < node 3's 1.7326
    t.add(2, {"x": 4})
    assert t.ucb_score(2, 1.0) == pytest.approx(0.8 + math.sqrt(math.log(4) / 2))
    assert t.select_parent(1.0) == 3
    assert ExplorationTree().select_parent() == ROOT


def test_tree_json_round_trip(tmp_path):
    t = hand_tree()
    t.save(tmp_path / "tree.json")
    t2 = ExplorationTree.load(tmp_path / "tree.json")
    assert t2.to_dict() == t.to_dict()
    assert not list(tmp_path.glob("*.tmp"))


def test_mutation_line_parser():
    m = parse_mutation_line("Mutation: learning_rate_W_start: 6E-4 -> 1E-3")
    assert m == [Mutation("learning_rate_W_start", 6e-4, 1e-3)]
    m = parse_mutation_line("Mutation: recurrent_training: false -> true; time_step: 1 -> 3")
    assert m == [Mutation("recurrent_training", False, True), Mutation("time_step", 1, 3)]
    assert parse_mutation_line("Mutation: none (baseline)") == []
    for x in (Mutation("lr", 0.0012, 0.003), Mutation("variant", "A", "B"), Mutation("time_step", 2, 5)):
        assert parse_mutation_line(x.line()) == [x]
    with pytest.raises(ValueError):
        parse_mutation_line("Mutation: lr 1 2")


def test_log_entry_round_trip():
    e = IterEntry(
        7,
        "V_rest partial",
        7,
        3,
        "exploit",
        {"lr_update": 0.002, "recurrent_training": True, "time_step": 2, "coeff_W_L2": 2.5e-6},
        {"V_rest_R2": 0.4512, "connectivity_R2": 0.9123, "training_time_min": 12.5},
        [Mutation("lr_update", 0.0012, 0.002), Mutation("time_step", 1, 2)],
        "UCB max score=1.2 (subtree mean=0.4, n=2, c=1.0)",
        "V_rest_R2=0.4512; within Node 21 range 0.11-0.78",
        3,
    )
    text = (
        e.format()
        + "\n"
        + IterEntry(8, "V_rest failed", 8, 7, "robustness-check", note="(robustness re-run of node 7)").format()
    )
    parsed = parse_log("# header\n\n" + text)
    assert parsed[0] == e
    assert parsed[1].note == "(robustness re-run of node 7)" and parsed[1].mutations == []
    assert "\n".join(p.format() for p in parsed) == text


def test_locked_parameters_cannot_be_mutated(tmp_path):
    c = cfg().constraints
    base = cfg().base_config
    with pytest.raises(LockedParameterError, match="hidden_dim"):
        c.apply(base, [Mutation("hidden_dim", 80, 64)])
    with pytest.raises(LockedParameterError, match="lr_W"):
        c.apply(base, [Mutation("lr_W", 6e-4, 1e-3)])
    # the seed-004 exception: lr_W only together with recurrent training
    new = c.apply(base, [Mutation("recurrent_training", False, True), Mutation("lr_W", 6e-4, 1e-3)])
    assert new["lr_W"] == 1e-3
    with pytest.raises(SearchSpaceError):
        c.apply(base, [Mutation("lr", 1e-3, 0.5)])
    with pytest.raises(ValueError, match="both locked and in the search space"):
        Constraints.from_dict({"hidden_dim": [64, 80]}, {"hidden_dim": 80})
    # an external proposer that touches a locked parameter stops the run
    ex_cfg = cfg(iterations=4)
    with pytest.raises(LockedParameterError):
        Explorer(
            ex_cfg, tmp_path / "locked", engine="serial", propose_fn=lambda mem, tree: ["hidden_dim: 80 -> 32"]
        ).run()


def test_proposer_error_leaves_no_half_built_node(tmp_path):
    # the locked mutation raises; the restart must not find (and run) an unmutated pending node
    calls = []

    def propose(memory_text, tree):
        calls.append(1)
        return ["hidden_dim: 80 -> 32"] if len(calls) == 1 else ["lr: 0.001 -> 0.002"]

    out = tmp_path / "err"
    with pytest.raises(LockedParameterError):
        Explorer(cfg(iterations=4, robustness={}), out, engine="serial", propose_fn=propose).run()
    saved = ExplorationTree.load(out / "tree.json")
    assert all(n.status == "done" for n in saved.run_nodes()) and "pending" not in saved.meta
    again = Explorer(cfg(iterations=4, robustness={}), out, engine="serial", propose_fn=propose)
    again.run()
    mutated = [n for n in again.tree.run_nodes() if n.mode != "baseline"]
    assert mutated and all(n.mutations == [{"param": "lr", "old": 1e-3, "new": 2e-3}] for n in mutated)


def test_lock_returns_when_its_exception_no_longer_holds():
    c = cfg().constraints
    parent = c.apply(cfg().base_config, [Mutation("recurrent_training", False, True), Mutation("lr_W", 6e-4, 1e-3)])
    child = c.apply(parent, [Mutation("recurrent_training", True, False)])
    assert c.relock(child) == {"lr_W": 6e-4}  # lr_W was allowed only with recurrent training
    assert c.relock(parent) == {}


def test_runner_records_the_relock_as_a_mutation(tmp_path):
    ex = Explorer(
        cfg(iterations=3, robustness={}),
        tmp_path / "relock",
        engine="serial",
        propose_fn=lambda mem, tree: ["recurrent_training: true -> false"],
    )
    parent = ex.tree.add(ROOT, {**ex.cfg.base_config, "recurrent_training": True, "lr_W": 1e-3}, mode="explore")
    parent.status, parent.reward = "done", 0.5  # the only finished node: UCB picks it
    child = ex._new_node(slot=0, iteration=2)
    assert child.parent == parent.id
    assert child.config["recurrent_training"] is False and child.config["lr_W"] == 6e-4
    assert child.mutations == [
        {"param": "recurrent_training", "old": True, "new": False},
        {"param": "lr_W", "old": 1e-3, "new": 6e-4},
    ]


def test_resume_logs_a_finished_node_whose_entry_a_kill_cut_off(tmp_path):
    out = tmp_path / "cutlog"
    Explorer(cfg(iterations=4, robustness={}), out, engine="serial").run()
    log = out / "t_analysis.md"
    text = log.read_text()
    log.write_text(text[: text.index("## Iter 4")])  # killed between tree.save and the log append
    again = Explorer(cfg(iterations=4, robustness={}), out, engine="serial")
    again.run()
    assert sorted(e.node for e in parse_log(log.read_text())) == [1, 2, 3, 4]


def test_proposer_stays_in_search_space():
    c = cfg()
    prop = RandomProposer(c.constraints, seed=0)
    conf = dict(c.base_config)
    counts = set()
    for nid in range(300):
        params = ["lr", "coeff_W_L2"] if nid % 2 else None
        muts = prop.propose(conf, nid, params)
        assert 1 <= len(muts) <= 2 and len({m.param for m in muts}) == len(muts)
        counts.add(len(muts))
        for m in muts:
            assert c.constraints.space[m.param].contains(m.new), m
            assert m.param not in ("hidden_dim",)
            if params:
                assert m.param in params
            assert m.old == conf[m.param] and m.new != m.old
        new = c.constraints.apply(conf, muts)
        if nid % 3 == 0:
            conf = new
    assert counts == {1, 2}
    assert prop.propose(c.base_config, 5) == RandomProposer(c.constraints, seed=0).propose(c.base_config, 5)


def _node_view(tree):
    return [
        (n.id, n.parent, n.slot, n.mode, json.dumps(n.config, sort_keys=True), n.data_seed, n.status, n.reward)
        for n in sorted(tree.run_nodes(), key=lambda n: n.id)
    ]


def test_resume_after_interrupt_loses_and_repeats_nothing(tmp_path):
    full = Explorer(cfg(), tmp_path / "full", engine="serial")
    full.run()
    assert len(full.tree.run_nodes()) == 10  # 8 + 2 final robustness re-runs
    cut = Explorer(cfg(), tmp_path / "cut", engine="serial")
    with pytest.raises(ExplorationInterrupted):
        cut.run(max_new_nodes=3)  # mid-batch: node 4 saved as in flight
    saved = ExplorationTree.load(tmp_path / "cut" / "tree.json")
    assert [n.id for n in saved.finished_nodes()] == [1, 2, 3]
    assert [n.id for n in saved.unfinished_nodes()] == [4]
    log_before = parse_log((tmp_path / "cut" / "t_analysis.md").read_text())
    again = Explorer(cfg(), tmp_path / "cut", engine="serial")
    assert again.resumed
    again.run()
    assert _node_view(again.tree) == _node_view(full.tree)  # same tree as the uninterrupted run
    entries = parse_log((tmp_path / "cut" / "t_analysis.md").read_text())
    assert sorted(e.node for e in entries) == list(range(1, 11))  # each node logged exactly once
    assert [e.node for e in entries[:3]] == [e.node for e in log_before]
    # robustness: slot 1 re-ran the best config; summary has mean/std over its samples
    s = json.loads((tmp_path / "cut" / "summary.json").read_text())
    best = s["best"]["all"]
    assert len(best["samples"]) >= 3 and best["metrics_mean_std"]["score"]["n"] == len(best["samples"])
    assert len(set(best["data_seeds"])) == len(best["data_seeds"])
    assert any(n.mode == "robustness-check" for n in again.tree.run_nodes())
    mem = (tmp_path / "cut" / "t_memory.md").read_text()
    assert "## Current best" in mem and "## Locked parameters" in mem and "### Block 2" in mem


def test_resume_after_worker_death_process_pool(tmp_path):
    out = tmp_path / "ex"
    dying = cfg(iterations=6, robustness={}, fake={**BASE["fake"], "die_on_node": 4})
    with pytest.raises(RuntimeError, match="worker process died"):
        Explorer(dying, out, engine="local").run()
    saved = ExplorationTree.load(out / "tree.json")
    done_before = {n.id: n.reward for n in saved.finished_nodes()}
    assert 4 not in done_before and {1, 2} <= set(done_before)
    ex = Explorer(cfg(iterations=6, robustness={}), out, engine="local")
    ex.run()
    nodes = ex.tree.run_nodes()
    assert sorted(n.id for n in nodes) == list(range(1, 7)) and all(n.status == "done" for n in nodes)
    for nid, r in done_before.items():  # finished nodes kept, not re-run
        assert ex.tree.nodes[nid].reward == r
    entries = parse_log((out / "t_analysis.md").read_text())
    assert sorted(e.node for e in entries) == list(range(1, 7))


def test_failed_node_is_finished_not_rerun(tmp_path):
    ex = Explorer(cfg(iterations=4, robustness={}, fake={**BASE["fake"], "fail_on_node": 3}), tmp_path, engine="serial")
    ex.run()
    assert ex.tree.nodes[3].status == "failed" and "fake failure" in ex.tree.nodes[3].error
    ex2 = Explorer(cfg(iterations=4, robustness={}), tmp_path, engine="serial")
    ex2.run()
    assert ex2.tree.nodes[3].status == "failed" and len(ex2.tree.run_nodes()) == 4


def test_external_command_and_python_proposers(tmp_path):
    cmd = f"{sys.executable} -c \"import sys; open(sys.argv[1]).read(); print('thinking...'); print('Mutation: lr: 0.001 -> 0.002')\""
    ex = Explorer(
        cfg(iterations=4, robustness={}, proposer={"type": "command", "command": cmd}), tmp_path / "c", engine="serial"
    )
    ex.run()
    muts = [n.mutations for n in ex.tree.run_nodes() if n.mode not in ("baseline",)]
    assert muts and all([(x["param"], x["new"]) for x in m] == [("lr", 0.002)] for m in muts)
    seen = []

    def propose(memory_text, tree):
        seen.append(memory_text)
        return [{"param": "time_step", "new": 4}]

    ex = Explorer(cfg(iterations=3, robustness={}), tmp_path / "p", engine="serial", propose_fn=propose)
    ex.run()
    assert seen and "Next: parent=" in seen[0]
    assert ex.tree.nodes[3].config["time_step"] == 4


def test_cli_explore(tmp_path, capsys):
    import yaml

    from eirnn_fast.cli import main

    p = tmp_path / "ex.yaml"
    p.write_text(yaml.safe_dump(BASE))
    assert (
        main(
            [
                "explore",
                str(p),
                "--slots",
                "2",
                "--iterations",
                "4",
                "--engine",
                "serial",
                "--out",
                str(tmp_path / "o"),
                "--quiet",
            ]
        )
        == 0
    )
    assert "| id | parent |" in capsys.readouterr().out
    assert (tmp_path / "o" / "tree.json").exists() and (tmp_path / "o" / "summary.md").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**BASE, "bogus": 1}))
    assert main(["explore", str(bad)]) == 2


@pytest.mark.parametrize("name", ["flyvis_understand_small.yaml", "flyvis_vrest_small.yaml"])
def test_shipped_configs_parse(name):
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "experiments" / "explore" / name
    c = ExploreConfig.from_yaml(path)
    assert c.kind == "flyvis" and c.generate.get("extent") in (1, 2)


def test_shipped_sc_exploration_runs(tmp_path):
    """kind: sc end to end: each node re-splits the embedded session with its data seed."""
    from pathlib import Path

    from eirnn_fast.cli import main

    config = Path(__file__).resolve().parents[2] / "experiments" / "explore" / "sc_small.yaml"
    if not config.is_file():
        pytest.skip("experiments/ not beside the tests (installed copy)")
    text = config.read_text().replace("iterations: 4", "iterations: 2").replace("epochs: 5", "epochs: 2")
    small = tmp_path / "sc.yaml"
    small.write_text(text)
    assert main(["explore", str(small), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    log = (tmp_path / "out" / "sc_small_analysis.md").read_text()
    assert log.count("## Iter ") == 2 and "Node: id=2, parent=0" in log


def test_shipped_flyvis_exploration_runs(tmp_path):
    """kind: flyvis end to end at a toy scale: each node regenerates its data (extent 1) and trains."""
    from pathlib import Path

    import yaml

    config = Path(__file__).resolve().parents[2] / "experiments" / "explore" / "flyvis_vrest_small.yaml"
    if not config.is_file():
        pytest.skip("experiments/ not beside the tests (installed copy)")
    d = yaml.safe_load(config.read_text())
    d.update(slots=1, iterations=2, robustness={})
    d["generate"].update(extent=1, n_frames=60, n_test_frames=20)
    d["base_config"].update(iterations_per_epoch=3, n_test_frames=20)
    ex = Explorer(ExploreConfig.from_dict(d), tmp_path / "fv", engine="serial")
    ex.run()
    nodes = ex.tree.run_nodes()
    assert [n.status for n in nodes] == ["done", "done"], [n.error for n in nodes]
    assert [n.data_seed for n in nodes] == [4001, 4002]  # data regenerated per node
    for n in nodes:
        assert n.metrics["n_neurons"] == 443 and "V_rest_R2" in n.metrics and "connectivity_R2" in n.metrics
        assert n.label in ("V_rest success", "V_rest partial", "V_rest failed")
    assert nodes[1].mutations and nodes[1].mutations[0]["param"] == "lr_update"  # block 1's parameter
    entries = parse_log((tmp_path / "fv" / "flyvis_vrest_analysis.md").read_text())
    assert [e.node for e in entries] == [1, 2]
    assert not any((tmp_path / "fv" / "nodes").rglob("train_s*.npz"))  # generated data removed (keep_data false)
