#!/usr/bin/env python3
"""Writes tests/fixtures/optim/: torch.optim's optimizers stepped on fixed parameters and
gradients, the reference for crates/trustformers-optim/tests/optimizers.rs and schedules.rs.

Each case is an optimizer class with constructor arguments. Four parameters (a matrix, a
vector, a 3-D tensor and a scalar) take 20 steps on seeded gradients with zeros, sign changes
and one large outlier. Stored: the initial parameters, every step's gradients and every
step's parameters (`torch.safetensors`, keys `{case}/init/{name}`, `{case}/grad/{step}/{name}`,
`{case}/param/{step}/{name}`), and the cases with each class's constructor defaults
(`torch.json`).

Also transformers' learning-rate schedules (`get_scheduler`, every step-driven
SchedulerType), `clip_grad_norm_` and `clip_grad_value_`.

Usage (needs torch, transformers, timm, schedulefree, safetensors):
  python tools/gen_optim_fixtures.py
"""

import inspect
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "optim"
STEPS = 20
SHAPES = {"w": (4, 3), "b": (5,), "t": (2, 3, 2), "s": ()}

# case name -> (class, constructor arguments): every option on somewhere.
CASES = {
    "sgd": ("SGD", {"lr": 0.1}),
    "sgd_momentum": ("SGD", {"lr": 0.1, "momentum": 0.9}),
    "sgd_nesterov_decay": ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    "sgd_dampening_maximize": ("SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "maximize": True}),
    "adam": ("Adam", {}),
    "adam_amsgrad_decay": ("Adam", {"lr": 1e-2, "amsgrad": True, "weight_decay": 0.1}),
    "adam_betas_maximize": ("Adam", {"lr": 1e-2, "betas": [0.8, 0.99], "maximize": True}),
    "adam_decoupled": ("Adam", {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    "adamw": ("AdamW", {}),
    "adamw_amsgrad": ("AdamW", {"lr": 1e-2, "amsgrad": True, "weight_decay": 0.1}),
    "adamax": ("Adamax", {}),
    "adamax_decay_maximize": ("Adamax", {"lr": 1e-2, "weight_decay": 0.1, "maximize": True}),
    "nadam": ("NAdam", {}),
    "nadam_decay": ("NAdam", {"lr": 1e-2, "weight_decay": 0.1}),
    "nadam_decoupled": ("NAdam", {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True, "momentum_decay": 1e-2}),
    "radam": ("RAdam", {}),
    "radam_decay": ("RAdam", {"lr": 1e-2, "weight_decay": 0.1}),
    # beta2 = 0.9: the rectified update from the 5th step on.
    "radam_decoupled_rectified": ("RAdam", {"lr": 1e-2, "betas": [0.9, 0.9], "weight_decay": 0.1, "decoupled_weight_decay": True}),
    "adagrad": ("Adagrad", {}),
    "adagrad_options": ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.1, "initial_accumulator_value": 0.1}),
    "adadelta": ("Adadelta", {}),
    "adadelta_options": ("Adadelta", {"lr": 0.5, "rho": 0.8, "weight_decay": 0.1, "maximize": True}),
    "rmsprop": ("RMSprop", {}),
    "rmsprop_centered_momentum": ("RMSprop", {"lr": 1e-3, "centered": True, "momentum": 0.9, "weight_decay": 0.1}),
    "rmsprop_momentum": ("RMSprop", {"momentum": 0.5}),
    "rprop": ("Rprop", {}),
    "rprop_options": ("Rprop", {"lr": 0.05, "etas": [0.3, 1.5], "step_sizes": [1e-3, 0.2], "maximize": True}),
    "asgd": ("ASGD", {}),
    # t0 = 5: averaging from the 6th step on.
    "asgd_averaging": ("ASGD", {"lr": 0.05, "lambd": 0.01, "alpha": 0.5, "t0": 5, "weight_decay": 0.1, "maximize": True}),
    "adafactor": ("Adafactor", {}),
    "adafactor_options": ("Adafactor", {"lr": 0.05, "beta2_decay": -0.5, "eps": [1e-6, 1e-2], "d": 2.0, "weight_decay": 0.1, "maximize": True}),
    "hf_adafactor": ("transformers.Adafactor", {}),
    "hf_adafactor_warmup": ("transformers.Adafactor", {"warmup_init": True, "decay_rate": -0.5, "clip_threshold": 0.5}),
    "hf_adafactor_manual": ("transformers.Adafactor", {"lr": 1e-2, "relative_step": False, "scale_parameter": False, "beta1": 0.9, "weight_decay": 0.1}),
    "lion": ("Lion", {}),
    "lion_options": ("Lion", {"lr": 1e-3, "betas": [0.8, 0.95], "weight_decay": 0.1, "caution": True, "corrected_weight_decay": True, "maximize": True}),
    "adabelief": ("AdaBelief", {}),
    "adabelief_amsgrad_l2": ("AdaBelief", {"lr": 1e-2, "amsgrad": True, "decoupled_decay": False, "weight_decay": 0.1, "eps": 1e-10}),
    "adabelief_plain_fixed": ("AdaBelief", {"lr": 1e-2, "rectify": False, "fixed_decay": True, "weight_decay": 0.01, "betas": [0.9, 0.9]}),
    "adabelief_no_sgd": ("AdaBelief", {"lr": 1e-2, "degenerated_to_sgd": False}),
    "adan": ("Adan", {}),
    "adan_prox": ("Adan", {"lr": 1e-2, "weight_decay": 0.1, "betas": [0.9, 0.9, 0.95]}),
    "adan_no_prox_caution": ("Adan", {"lr": 1e-2, "weight_decay": 0.1, "no_prox": True, "caution": True}),
    "lars": ("Lars", {"lr": 0.1}),
    "lars_decay_momentum": ("Lars", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01, "trust_coeff": 0.01}),
    "lars_nesterov_clip": ("Lars", {"lr": 0.5, "momentum": 0.9, "nesterov": True, "always_adapt": True, "trust_clip": True}),
    # Lookahead around AdamW and SGD: the inner optimizer's name and arguments.
    "lookahead_adamw": ("Lookahead", {"optimizer": "AdamW", "optimizer_kwargs": {"lr": 1e-2}}),
    "lookahead_sgd": ("Lookahead", {"optimizer": "SGD", "optimizer_kwargs": {"lr": 0.1, "momentum": 0.9}, "alpha": 0.3, "k": 4}),
    "lamb": ("Lamb", {}),
    "lamb_options": ("Lamb", {"lr": 1e-2, "max_grad_norm": None, "decoupled_decay": True, "weight_decay": 0.1, "trust_clip": True, "caution": True, "grad_averaging": False}),
    "lamb_no_decay": ("Lamb", {"lr": 1e-2, "weight_decay": 0.0, "always_adapt": True, "bias_correction": False, "max_grad_norm": 5.0}),
    "madgrad": ("MADGRAD", {}),
    "madgrad_no_momentum_decay": ("MADGRAD", {"momentum": 0.0, "weight_decay": 0.1}),
    "madgrad_decoupled": ("MADGRAD", {"lr": 1e-3, "weight_decay": 0.1, "decoupled_decay": True}),
    "nvnovograd": ("NvNovoGrad", {}),
    "nvnovograd_options": ("NvNovoGrad", {"lr": 1e-2, "amsgrad": True, "grad_averaging": True, "weight_decay": 0.1}),
    "nvnovograd_decoupled": ("NvNovoGrad", {"lr": 1e-2, "weight_decay": 0.1, "decoupled_decay": True, "corrected_weight_decay": True}),
    "adamp": ("AdamP", {}),
    # `_proj` cases get gradients orthogonal to each weight row, so that the projection runs.
    "adamp_proj": ("AdamP", {"lr": 1e-2, "weight_decay": 0.1, "nesterov": True}),
    "adamp_proj_caution": ("AdamP", {"lr": 1e-2, "weight_decay": 0.1, "caution": True}),
    "sgdp": ("SGDP", {"lr": 0.1, "momentum": 0.9}),
    "sgdp_proj": ("SGDP", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01, "nesterov": True}),
    "sgdp_proj_caution": ("SGDP", {"lr": 0.1, "momentum": 0.5, "dampening": 0.1, "weight_decay": 0.01, "caution": True}),
    "schedulefree": ("AdamWScheduleFree", {}),
    "schedulefree_options": ("AdamWScheduleFree", {"lr": 1e-2, "betas": [0.8, 0.99], "weight_decay": 0.1, "warmup_steps": 5, "r": 1.0, "weight_lr_power": 1.5}),
}

# Schedules: case name -> (transformers SchedulerType, scheduler_specific_kwargs).
SCHEDULES = {
    "linear": ("linear", {}),
    "cosine": ("cosine", {}),
    "cosine_cycles": ("cosine", {"num_cycles": 1.5}),
    "cosine_with_restarts": ("cosine_with_restarts", {}),
    "cosine_with_restarts_3": ("cosine_with_restarts", {"num_cycles": 3}),
    "polynomial": ("polynomial", {}),
    "polynomial_power": ("polynomial", {"lr_end": 0.01, "power": 2.0}),
    "constant": ("constant", {}),
    "constant_with_warmup": ("constant_with_warmup", {}),
    "inverse_sqrt": ("inverse_sqrt", {}),
    "inverse_sqrt_timescale": ("inverse_sqrt", {"timescale": 50}),
    "cosine_with_min_lr": ("cosine_with_min_lr", {"min_lr": 0.01}),
    "cosine_with_min_lr_rate": ("cosine_with_min_lr", {"min_lr_rate": 0.2}),
    "cosine_warmup_with_min_lr": ("cosine_warmup_with_min_lr", {"min_lr_rate": 0.1}),
    "cosine_warmup_with_min_lr_rate": ("cosine_warmup_with_min_lr", {"min_lr": 0.005, "warmup_lr_rate": 0.1}),
    "wsd": ("warmup_stable_decay", {"num_decay_steps": 300}),
    "wsd_cosine_sqrt": ("warmup_stable_decay", {"num_decay_steps": 200, "num_stable_steps": 400, "warmup_type": "cosine", "decay_type": "1-sqrt", "min_lr_ratio": 0.1}),
    "wsd_sqrt_linear": ("warmup_stable_decay", {"num_decay_steps": 300, "warmup_type": "1-sqrt", "decay_type": "linear"}),
}
WARMUP, TRAINING, RECORDED = 100, 1000, 1200
# torch's own schedulers: case name -> (class, arguments).
TORCH_SCHEDULES = {
    "step_lr": ("StepLR", {"step_size": 30, "gamma": 0.5}),
    "multi_step_lr": ("MultiStepLR", {"milestones": [100, 250, 600], "gamma": 0.3}),
    "exponential_lr": ("ExponentialLR", {"gamma": 0.995}),
}
# OneCycleLR and CyclicLR (rates and momenta): case -> (class, optimizer, arguments).
CYCLES = {
    "one_cycle_sgd": ("OneCycleLR", "SGD", {"max_lr": [0.1, 0.05], "total_steps": 1000}),
    "one_cycle_adam_three_phase": ("OneCycleLR", "Adam", {"max_lr": 0.01, "total_steps": 500, "pct_start": 0.25, "anneal_strategy": "linear", "three_phase": True, "div_factor": 10.0, "final_div_factor": 100.0}),
    "one_cycle_no_momentum": ("OneCycleLR", "SGD", {"max_lr": 0.2, "epochs": 10, "steps_per_epoch": 50, "cycle_momentum": False}),
    "cyclic_triangular": ("CyclicLR", "SGD", {"base_lr": 0.01, "max_lr": [0.1, 0.05], "step_size_up": 100}),
    "cyclic_triangular2": ("CyclicLR", "SGD", {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 50, "step_size_down": 150, "mode": "triangular2"}),
    "cyclic_exp_range_adam": ("CyclicLR", "Adam", {"base_lr": 0.001, "max_lr": 0.01, "step_size_up": 80, "mode": "exp_range", "gamma": 0.999, "base_momentum": 0.85, "max_momentum": 0.95}),
}

# ReduceLROnPlateau on a metric that improves, then stalls: case -> arguments.
PLATEAU = {
    "plateau": {},
    "plateau_options": {"mode": "max", "factor": 0.5, "patience": 3, "threshold": 0.01, "threshold_mode": "abs", "cooldown": 2, "min_lr": 0.01},
}

# Classes taken from timm.optim.
TIMM = {"Lion", "AdaBelief", "Adan", "Lars", "Lamb", "MADGRAD", "NvNovoGrad", "AdamP", "SGDP"}

# Constructor switches that choose an implementation, not the numbers.
IMPLEMENTATION = {"foreach", "capturable", "differentiable", "fused"}


def optimizer_class(name):
    """torch.optim's class, or `transformers.X` for transformers' own."""
    if name == "AdamWScheduleFree":
        import schedulefree

        return schedulefree.AdamWScheduleFree
    if name in TIMM:
        import timm.optim

        return getattr(timm.optim, name)
    if name.startswith("transformers."):
        import transformers.optimization

        return getattr(transformers.optimization, name.split(".", 1)[1])
    return getattr(torch.optim, name)


def gradients(case_seed):
    g = torch.Generator().manual_seed(case_seed)
    steps = []
    for step in range(STEPS):
        grads = {}
        for name, shape in SHAPES.items():
            x = torch.randn(shape, generator=g)
            # Zeros, and a sign that flips between steps for part of the values.
            x = x * (torch.rand(shape, generator=g) > 0.2)
            if step % 3 == 2:
                x = -x
            if step == 7 and name == "w":
                x[0, 0] = 1e3
            grads[name] = x
        steps.append(grads)
    return steps


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    tensors, cases, defaults = {}, [], {}
    for seed, (case, (cls, kwargs)) in enumerate(CASES.items()):
        g = torch.Generator().manual_seed(1000 + seed)
        params = {n: torch.randn(s, generator=g).requires_grad_() for n, s in SHAPES.items()}
        for n, p in params.items():
            tensors[f"{case}/init/{n}"] = p.detach().clone()
        if cls == "Lookahead":
            import timm.optim

            inner = optimizer_class(kwargs["optimizer"])(list(params.values()), **kwargs.get("optimizer_kwargs", {}))
            opt = timm.optim.Lookahead(inner, **{k: v for k, v in kwargs.items() if k in ("alpha", "k")})
        else:
            opt = optimizer_class(cls)(list(params.values()), **kwargs)
        # Schedule-free optimizers step in train mode.
        if hasattr(opt, "train"):
            opt.train()
        for step, grads in enumerate(gradients(seed)):
            if "_proj" in case:
                for n, p in params.items():
                    if p.dim() > 1:
                        pv = p.detach().reshape(p.shape[0], -1)
                        gv = grads[n].reshape(p.shape[0], -1)
                        gv = gv - (gv * pv).sum(1, keepdim=True) / (pv * pv).sum(1, keepdim=True) * pv
                        grads[n] = gv.reshape(p.shape).contiguous()
            for n, p in params.items():
                p.grad = grads[n].clone()
                tensors[f"{case}/grad/{step}/{n}"] = grads[n].clone()
            opt.step()
            for n, p in params.items():
                tensors[f"{case}/param/{step}/{n}"] = p.detach().clone()
        if hasattr(opt, "eval"):
            opt.eval()
            for n, p in params.items():
                tensors[f"{case}/eval/{n}"] = p.detach().clone()
        cases.append({"name": case, "optimizer": cls, "kwargs": kwargs, "steps": STEPS})
        if cls not in defaults and cls != "Lookahead":
            klass = optimizer_class(cls)
            d = klass([torch.zeros(1)], **({"lr": 0.1} if cls == "SGDP" else {})).defaults
            if cls == "SGDP":
                d = dict(d, lr=None)
            # The constructor's arguments only (AdamW fixes decoupled_weight_decay itself).
            accepted = inspect.signature(klass.__init__).parameters
            # timm's SGDP has no default lr (torch's `required` sentinel): null.
            defaults[cls] = {
                k: (list(v) if isinstance(v, tuple) else v if isinstance(v, (int, float, bool, str, type(None), list)) else None)
                for k, v in d.items()
                if k not in IMPLEMENTATION and k in accepted
            }
    # clip_grad_norm_ on the gradients of the step with the outlier, for several norms, and
    # clip_grad_value_.
    clips = []
    for norm_type in [2.0, 1.0, 0.5, float("inf")]:
        grads = {n: g.clone() for n, g in gradients(0)[7].items()}
        params = [torch.zeros(SHAPES[n], requires_grad=True) for n in grads]
        for p, g in zip(params, grads.values()):
            p.grad = g.clone()
        total = torch.nn.utils.clip_grad_norm_(params, max_norm=1.5, norm_type=norm_type)
        key = f"clip_norm_{norm_type}"
        clips.append({"name": key, "norm_type": str(norm_type), "max_norm": 1.5, "total": total.item()})
        for n, p in zip(grads, params):
            tensors[f"{key}/grad/{n}"] = grads[n]
            tensors[f"{key}/clipped/{n}"] = p.grad.clone()
    grads = gradients(0)[7]
    for n, g in grads.items():
        tensors[f"clip_value/grad/{n}"] = g.clone()
        p = torch.zeros(SHAPES[n], requires_grad=True)
        p.grad = g.clone()
        torch.nn.utils.clip_grad_value_([p], clip_value=0.5)
        tensors[f"clip_value/clipped/{n}"] = p.grad.clone()
    # Schedules: two parameter groups (lr 0.1 and 0.05), the rates of steps 0..RECORDED,
    # each after the optimizer step of the step before, as in a training loop.
    import transformers

    schedules = []
    for case, (name, kwargs) in SCHEDULES.items():
        groups = [
            {"params": [torch.zeros(1, requires_grad=True)]},
            {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.05},
        ]
        opt = torch.optim.SGD(groups, lr=0.1)
        sched = transformers.get_scheduler(
            name, opt, num_warmup_steps=WARMUP, num_training_steps=TRAINING,
            scheduler_specific_kwargs=kwargs,
        )
        lrs = []
        for _ in range(RECORDED):
            lrs.append(sched.get_last_lr())
            opt.step()
            sched.step()
        tensors[f"schedule/{case}"] = torch.tensor(lrs, dtype=torch.float64)
        schedules.append({"name": case, "scheduler": name, "kwargs": kwargs})
    for case, (cls, kwargs) in TORCH_SCHEDULES.items():
        groups = [
            {"params": [torch.zeros(1, requires_grad=True)]},
            {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.05},
        ]
        opt = torch.optim.SGD(groups, lr=0.1)
        sched = getattr(torch.optim.lr_scheduler, cls)(opt, **kwargs)
        lrs = []
        for _ in range(RECORDED):
            lrs.append(sched.get_last_lr())
            opt.step()
            sched.step()
        tensors[f"schedule/{case}"] = torch.tensor(lrs, dtype=torch.float64)
        schedules.append({"name": case, "torch": cls, "kwargs": kwargs})
    cycles = []
    for case, (cls, opt_cls, kwargs) in CYCLES.items():
        opt_kwargs = {"momentum": 0.9} if opt_cls == "SGD" else {}
        groups = [
            {"params": [torch.zeros(1, requires_grad=True)]},
            {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.05},
        ]
        opt = getattr(torch.optim, opt_cls)(groups, lr=0.1, **opt_kwargs)
        sched = getattr(torch.optim.lr_scheduler, cls)(opt, **kwargs)
        steps = kwargs.get("total_steps") or kwargs.get("epochs", 0) * kwargs.get("steps_per_epoch", 0) or 1000
        rows = []
        for _ in range(steps):
            rows.append(
                [grp["lr"] for grp in opt.param_groups]
                + [grp["betas"][0] if "betas" in grp else grp["momentum"] for grp in opt.param_groups]
            )
            opt.step()
            if len(rows) < steps:
                sched.step()
        tensors[f"cycle/{case}"] = torch.tensor(rows, dtype=torch.float64)
        cycles.append({"name": case, "scheduler": cls, "optimizer": opt_cls, "optimizer_kwargs": opt_kwargs, "kwargs": kwargs})
    g = torch.Generator().manual_seed(5)
    steps = torch.arange(300, dtype=torch.float64)
    metric = 1.0 / (1.0 + steps / 20.0) + 0.02 * torch.rand(300, generator=g, dtype=torch.float64)
    tensors["plateau/metric"] = metric
    plateaus = []
    for case, kwargs in PLATEAU.items():
        groups = [
            {"params": [torch.zeros(1, requires_grad=True)]},
            {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.05},
        ]
        opt = torch.optim.SGD(groups, lr=0.1)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
        sign = -1.0 if kwargs.get("mode") == "max" else 1.0
        lrs = []
        for m in metric.tolist():
            opt.step()
            sched.step(sign * m)
            lrs.append([grp["lr"] for grp in opt.param_groups])
        tensors[f"plateau/{case}"] = torch.tensor(lrs, dtype=torch.float64)
        plateaus.append({"name": case, "kwargs": kwargs, "sign": sign})
    # The Trainer's weight-decay rule on tiny models of three families.
    from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    tiny = dict(vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    models = {
        "llama": LlamaForCausalLM(LlamaConfig(**tiny, tie_word_embeddings=False)),
        "gpt2": GPT2LMHeadModel(GPT2Config(vocab_size=32, n_embd=8, n_layer=1, n_head=2)),
        "bert": BertForMaskedLM(BertConfig(**tiny)),
    }
    decay = {}
    for family, model in models.items():
        decay[family] = {
            "names": [n for n, _ in model.named_parameters()],
            "decay": transformers.Trainer.get_decay_parameter_names(None, model),
            "layer_norms": [n for n, m in model.named_modules() if isinstance(m, torch.nn.LayerNorm)],
        }
    # LBFGS on the Rosenbrock function from (-1.5, 2.0): the point and the evaluation count
    # after each of 5 steps.
    lbfgs = []
    for case, kwargs in {
        "lbfgs": {},
        "lbfgs_strong_wolfe": {"line_search_fn": "strong_wolfe"},
        "lbfgs_short_history": {"lr": 0.5, "history_size": 3, "max_iter": 10},
    }.items():
        x = torch.tensor([-1.5, 2.0], requires_grad=True)
        opt = torch.optim.LBFGS([x], **kwargs)

        def closure():
            opt.zero_grad()
            x0, x1 = x[0], x[1]
            loss = (1 - x0) ** 2 + 100 * (x1 - x0 ** 2) ** 2
            loss.backward()
            return loss

        rows = []
        for _ in range(5):
            opt.step(closure)
            rows.append([x[0].item(), x[1].item(), opt.state[x]["func_evals"]])
        tensors[f"lbfgs/{case}"] = torch.tensor(rows, dtype=torch.float64)
        lbfgs.append({"name": case, "kwargs": kwargs})
    save_file({k: v.contiguous() for k, v in tensors.items()}, OUT / "torch.safetensors")
    meta = {
        "lbfgs": lbfgs,
        "cycles": cycles,
        "decay": decay,
        "plateaus": plateaus,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "timm_version": __import__("timm").__version__,
        "schedulefree_version": __import__("importlib.metadata").metadata.version("schedulefree"),
        "cases": cases,
        "defaults": defaults,
        "clips": clips,
        "schedules": schedules,
        "schedule_steps": {"warmup": WARMUP, "training": TRAINING, "recorded": RECORDED, "lr": [0.1, 0.05]},
    }
    (OUT / "torch.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{len(cases)} cases, torch {torch.__version__}")


if __name__ == "__main__":
    main()
