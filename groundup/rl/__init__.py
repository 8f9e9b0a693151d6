"""Reinforcement learning from verifiable rewards: the model practises on bug-fix tasks through
the real agent harness and is rewarded when the tests pass (the third stage of a model's life,
after pretraining and fine-tuning; docs/12-rl.md).

    rollout.py   attempts through the agent, the ids the model produced, rewards from the tests
    grpo.py      group-relative advantages and the policy-gradient loss with a KL penalty
    trainer.py   the loop: rollouts -> update -> the engine gets the new weights; resumable
    config.py    RLConfig: every setting of a run
    plot.py      reward, solve rate and KL curves

The layer sits beside `tasks` (it runs the agent on tasks and trains a model): it imports the
agent, providers, tasks and train layers; only the speedrun and command modules import it.
"""
