#!/usr/bin/env python3
"""A PyTorch (CPU) port of the seed's SGN runs and of the products benchmark, for comparison.

Written here from ../shared/seed/SGN-ALGORITHM.md (SGN-ALGORITHM.md in the seed's notes), with the
settings our `train` / `reproduce` use; it is not a port of any other implementation. It needs
PyTorch (tested with Debian's python3-torch 1.13.1, convolutions from oneDNN) and NumPy; it is
never a dependency of the library. The bench scripts call it with the interpreter given by
`--torch PYTHON` (bench/README.md, "PyTorch comparison").

Commands (all take --threads N, default the machine's cores):
  train --run mnist|fashion [--epochs 2] [--float64] [--data DIR] [--seed 1] [--gv forward]
      The seed's MNIST SGN(3) run (MLP 784-20-20-20-10 sigmoid) or Fashion-MNIST architecture_1
      SGN(3) run, batch 1000, TR and LS on, rho 1e-4, rho_min 1e-6, 10 CG iterations before step
      K_cg = 10 and 3 from it on. Prints one line per epoch and, last, a JSON line with the
      seed's results keys (avg_loss, acc, test_acc, epoch_time: cumulative seconds per epoch).
      CG's G v reuses the step's recorded forward pass (J v by double backward; --gv forward: by
      forward-mode AD).
  products [--only W1] [--float64] [--trials 3]
      Milliseconds per product on W1-W4 (bench/products_cases.ts), the fastest of the ways torch
      offers for each (all timed, listed in the line): one JSON line per product.
  check  (reads a JSON case on stdin, writes the products as JSON; used by tests/torch_port_test.ts)
  spec NAME  (prints a conv-net spec as JSON; the test holds it equal to models/networks.ts)
  about  (one line: torch version, threads, oneDNN, BLAS library)
"""

import argparse
import json
import os
import random
import sys
import time

# The conv-net specifications used here, as models/networks.ts defines them (the test checks that
# they are equal).
ARCHITECTURES = {
    "architecture_1": {
        "conv_layers": {
            "layer0": {"type": "CONV", "num_filters": 6, "filter_size": 5},
            "layer1": {"type": "ACT", "activation": "relu"},
            "layer2": {"type": "POOL"},
            "layer3": {"type": "CONV", "num_filters": 16, "filter_size": 5},
            "layer4": {"type": "ACT", "activation": "relu"},
            "layer5": {"type": "POOL"},
        },
        "mlp_layers": {
            "layer0": {"type": "FC", "output_size": 120, "activation": "relu"},
            "layer1": {"type": "FC", "output_size": 84, "activation": "relu"},
        },
    },
    "architecture_4": {
        "conv_layers": {
            "layer0": {"type": "CONV", "num_filters": 32, "filter_size": 3, "padding": 0, "stride": 1},
            "layer1": {"type": "ACT", "activation": "relu"},
            "layer2": {"type": "POOL", "pool_size": 2, "stride": 2},
            "layer3": {"type": "CONV", "num_filters": 64, "filter_size": 3, "padding": 0, "stride": 1},
            "layer4": {"type": "ACT", "activation": "relu"},
            "layer5": {"type": "POOL", "pool_size": 2, "stride": 2},
            "layer6": {"type": "CONV", "num_filters": 64, "filter_size": 3, "padding": 0, "stride": 1},
            "layer7": {"type": "ACT", "activation": "relu"},
        },
        "mlp_layers": {"layer0": {"type": "FC", "output_size": 64, "activation": "relu"}},
    },
}

if len(sys.argv) > 1 and sys.argv[1] == "spec":
    print(json.dumps(ARCHITECTURES[sys.argv[2]]))
    sys.exit(0)

# OpenBLAS reads its thread count when it loads (with NumPy): the same as torch's (--threads).
for i, a in enumerate(sys.argv):
    if a == "--threads" and i + 1 < len(sys.argv):
        os.environ.setdefault("OPENBLAS_NUM_THREADS", sys.argv[i + 1])

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
    import torch.autograd.forward_ad as fwAD
    import functorch
except ImportError as e:
    print(
        f"torch_port.py: {sys.executable} cannot import {e.name}: install PyTorch (Debian: "
        "apt-get install python3-torch) and pass that interpreter (--torch /usr/bin/python3)",
        file=sys.stderr,
    )
    sys.exit(3)


# ---------------------------------------------------------------------------------------------
# Networks: (parameter shapes, init, forward), parameters in the seed's order (per layer W, b).

ACTS = {"sigmoid": torch.sigmoid, "relu": F.relu, "tanh": torch.tanh}


class Net:
    """A network as our models/networks.ts builds it: parameter shapes, init, forward."""

    def __init__(self, shapes, bounds, steps, name, normal):
        self.shapes, self.bounds, self.steps, self.name = shapes, bounds, steps, name
        self.normal = normal  # weights N(0, 1) (the MLP), else U(+-bound)

    def init_numpy(self, seed):
        """The seed's initialization from NumPy's legacy generator, as our --init auto: one
        RandomState(seed) drawn from layer by layer (weights only; biases are 0)."""
        rs = np.random.RandomState(seed)
        out = []
        for shape, b in zip(self.shapes, self.bounds):
            n = int(np.prod(shape))
            if len(shape) == 1 or b == 0:
                out.append(np.zeros(shape))
            elif self.normal:
                out.append(rs.randn(n).reshape(shape))
            else:
                out.append(rs.uniform(-b, b, n).reshape(shape))
        return out

    def forward(self, params, x):
        for step in self.steps:
            x = step(params, x)
        return x


def mlp(inputs, hidden, outputs, act="sigmoid"):
    sizes = [inputs, *hidden, outputs]
    shapes, steps = [], []
    for i in range(len(sizes) - 1):
        shapes += [(sizes[i], sizes[i + 1]), (sizes[i + 1],)]
        last = i == len(sizes) - 2
        steps.append(
            lambda p, h, i=i, last=last: (
                torch.addmm(p[2 * i + 1], h, p[2 * i]) if last
                else ACTS[act](torch.addmm(p[2 * i + 1], h, p[2 * i]))
            )
        )
    return Net(shapes, [1 if len(s) == 2 else 0 for s in shapes], steps, "MLP " + "-".join(map(str, sizes)), True)


def conv_net(spec, input_shape, classes):
    c, h, w = input_shape
    shapes, bounds, steps = [], [], []
    order = lambda g: [g[k] for k in sorted(g, key=lambda k: int(k[5:]))]
    for layer in order(spec["conv_layers"]):
        if layer["type"] == "CONV":
            f, k = layer["num_filters"], layer["filter_size"]
            s, pad = layer.get("stride", 1), layer.get("padding", 0)
            wi = len(shapes)
            shapes += [(f, c, k, k), (f,)]
            bounds += [(6 / (f * c * k * k)) ** 0.5, 0]
            steps.append(lambda p, x, wi=wi, s=s, pad=pad: F.conv2d(x, p[wi], p[wi + 1], s, pad))
            c, h, w = f, (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
        elif layer["type"] == "ACT":
            steps.append(lambda p, x, a=ACTS[layer["activation"]]: a(x))
        elif layer["type"] == "POOL":
            size = layer.get("pool_size", 2)
            s = layer.get("stride", size)
            steps.append(lambda p, x, size=size, s=s: F.max_pool2d(x, size, s))
            h, w = (h - size) // s + 1, (w - size) // s + 1
        else:
            raise ValueError(f"unknown conv layer type {layer['type']}")
    steps.append(lambda p, x: x.reshape(x.shape[0], -1))
    features = c * h * w
    fcs = [(l["output_size"], l.get("activation")) for l in order(spec.get("mlp_layers", {}))]
    for out, act in [*fcs, (classes, None)]:
        wi = len(shapes)
        shapes += [(features, out), (out,)]
        bounds += [(6 / (features + classes)) ** 0.5, 0]
        steps.append(
            lambda p, x, wi=wi, a=(ACTS[act] if act else None): (
                a(torch.addmm(p[wi + 1], x, p[wi])) if a else torch.addmm(p[wi + 1], x, p[wi])
            )
        )
        features = out
    return Net(shapes, bounds, steps, f"ConvNet {'x'.join(map(str, input_shape))}", False)


# ---------------------------------------------------------------------------------------------
# Loss and the products (SGN-ALGORITHM.md "Objects").

def loss_of(z, labels):
    """Softmax cross-entropy averaged over the batch."""
    return F.cross_entropy(z, labels)


def hessian_product(z, w):
    """H_L w for the mean softmax cross-entropy: per sample (diag(s) - s s^T) w / N."""
    s = torch.softmax(z, 1)
    return s * (w - (s * w).sum(1, keepdim=True)) / z.shape[0]


def with_grad(params):
    return [p.detach().requires_grad_() for p in params]


def jvp_forward(net, params, x, v):
    """J v by forward-mode AD (torch.autograd.forward_ad): one forward pass carrying tangents."""
    with fwAD.dual_level():
        z = net.forward([fwAD.make_dual(p, t) for p, t in zip(params, v)], x)
        return fwAD.unpack_dual(z).tangent


def jvp_functorch(net, params, x, v):
    """J v by functorch.jvp (forward mode through functorch's transforms)."""
    return functorch.jvp(lambda *p: net.forward(p, x), tuple(params), tuple(v))[1]


def jvp_double(net, params, x, v):
    """J v by the double-backward trick: J v = d/du <J^T u, v> (a recorded forward pass and two
    backward passes)."""
    return Linearization(net, params, x).j(v)


def vjp(net, params, x, u):
    """J^T u: a recorded forward pass and one backward pass."""
    ps = with_grad(params)
    return torch.autograd.grad(net.forward(ps, x), ps, u)


def ggnvp_forward(net, params, x, v):
    """G v from scratch: one forward pass carrying tangents (J v) and recording a graph, then one
    backward pass (J^T (H_L J v))."""
    ps = with_grad(params)
    with fwAD.dual_level():
        z = net.forward([fwAD.make_dual(p, t) for p, t in zip(ps, v)], x)
        zp, zt = fwAD.unpack_dual(z)
        return torch.autograd.grad(zp, ps, hessian_product(zp.detach(), zt))


def ggnvp_functorch(net, params, x, v):
    """G v from scratch with functorch: jvp, then vjp (two forward passes)."""
    f = lambda *p: net.forward(p, x)
    z, jv = functorch.jvp(f, tuple(params), tuple(v))
    return functorch.vjp(f, *params)[1](hessian_product(z, jv))


def ggnvp_double(net, params, x, v):
    """G v from scratch: one recorded forward pass, J v by double backward, then J^T."""
    return Linearization(net, params, x).ggnvp(v)


class Linearization:
    """The forward pass recorded once (as in CG); J v and J^T w then reuse its graph: J^T w is a
    backward pass, J v the transpose of the (linear in u) backward pass J^T u, so no product
    runs the network forward again."""

    def __init__(self, net, params, x):
        self.ps = with_grad(params)
        self.z = net.forward(self.ps, x)
        self.zd = self.z.detach()
        self.u = torch.zeros_like(self.zd, requires_grad=True)
        self._jtu = None

    def jt(self, w):
        return torch.autograd.grad(self.z, self.ps, w, retain_graph=True)

    def j(self, v):
        if self._jtu is None:
            self._jtu = torch.autograd.grad(self.z, self.ps, self.u, create_graph=True)
        return torch.autograd.grad(self._jtu, self.u, v, retain_graph=True)[0]

    def ggnvp(self, v):
        return self.jt(hessian_product(self.zd, self.j(v)))


class LinearizationForward(Linearization):
    """The forward pass recorded once for J^T; J v by forward mode (a forward pass per product)."""

    def __init__(self, net, params, x):
        super().__init__(net, params, x)
        self.net, self.params, self.x = net, params, x

    def j(self, v):
        return jvp_forward(self.net, self.params, self.x, v)


def loss_onehot(z, labels):
    """The same loss from primitives that have forward-mode derivatives of their backward pass in
    torch 1.13 (cross_entropy's nll_loss_backward has none), for H v forward over reverse."""
    return (torch.logsumexp(z, 1) - z.gather(1, labels[:, None])[:, 0]).mean()


def hvp_reverse(net, params, x, labels, v):
    """H v, reverse over reverse: the gradient recorded, then differentiated along v."""
    ps = with_grad(params)
    g = torch.autograd.grad(loss_of(net.forward(ps, x), labels), ps, create_graph=True)
    return torch.autograd.grad(g, ps, v)


def hvp_forward(net, params, x, labels, v):
    """H v, forward over reverse: the directional derivative of the gradient."""
    ps = with_grad(params)
    with fwAD.dual_level():
        duals = [fwAD.make_dual(p, t) for p, t in zip(ps, v)]
        g = torch.autograd.grad(loss_onehot(net.forward(duals, x), labels), duals, create_graph=True)
        return [fwAD.unpack_dual(t).tangent for t in g]


# ---------------------------------------------------------------------------------------------
# SGN (SGN-ALGORITHM.md "One step"), with BETA 0 and no preconditioner, as the seed's runs.

def flat(ts):
    return torch.cat([t.reshape(-1) for t in ts])


def unflat(v, shapes):
    out, i = [], 0
    for s in shapes:
        n = int(np.prod(s))
        out.append(v[i : i + n].view(s))
        i += n
    return out


class SGN:
    def __init__(self, net, params, rho=1e-4, rho_min=1e-6, cg_min_iter=10, cg_max_iter=3,
                 k_cg=10, cg_tol=1e-6, alpha=1.0, c_ls=1e-4, rho_ls=0.5, max_ls_iters=10,
                 gv="retained"):
        self.net, self.theta = net, flat(params)
        self.shapes = [tuple(p.shape) for p in params]
        self.rho, self.rho_min = rho, rho_min
        self.cg_min, self.cg_max, self.k_cg, self.cg_tol = cg_min_iter, cg_max_iter, k_cg, cg_tol
        self.alpha, self.c_ls, self.rho_ls, self.max_ls = alpha, c_ls, rho_ls, max_ls_iters
        self.linearize = {"retained": Linearization, "forward": LinearizationForward}[gv]
        self.t = 0

    def params(self):
        return unflat(self.theta, self.shapes)

    def step(self, x, labels):
        t = self.t + 1
        rho = self.rho  # TR on: the adapted value
        lin = self.linearize(self.net, self.params(), x)
        l0t = loss_of(lin.z, labels)
        g = flat(torch.autograd.grad(l0t, lin.ps, retain_graph=True))
        l0 = l0t.item()
        # CG on (G + rho I) d = -g from d = 0 (M = 1, m_hat = g).
        budget = self.cg_max if t >= self.k_cg else self.cg_min
        r = g.clone()
        p = -r
        d = torch.zeros_like(g)
        ry = torch.dot(r, r)
        k = 0
        while k < budget and r.abs().max().item() > self.cg_tol:
            q = flat(lin.ggnvp(unflat(p, self.shapes))) + rho * p
            a = ry / torch.dot(p, q)
            d = d + a * p
            r = r + a * q
            ry_new = torch.dot(r, r)
            p = -r + (ry_new / ry) * p
            ry = ry_new
            k += 1
            if not (torch.isfinite(d).all() and torch.isfinite(r).all()):
                raise FloatingPointError(f"SGN step {t}: CG went non-finite")
        del lin
        pred = (0.5 * torch.dot(r + g, d)).item()
        md = torch.dot(g, d).item()
        # Line search (Armijo, Algorithm 3.1: the right-hand side shrinks with a).
        losses = []
        with torch.no_grad():
            for i in range(self.max_ls + 1):
                a = self.alpha * self.rho_ls**i
                z = self.net.forward(unflat(self.theta + a * d, self.shapes), x)
                l1 = loss_of(z, labels).item()
                losses.append(l1)
                if l1 <= l0 + a * self.c_ls * md:
                    break
            acc = (z.argmax(1) == labels).double().mean().item()
        ratio = (losses[0] - l0) / pred
        if ratio < 0.25:
            self.rho = 1.5 * rho
        elif ratio > 0.75:
            self.rho = max(2 / 3 * rho, self.rho_min)
        self.theta = self.theta + a * d
        self.t = t
        return {"loss": l0, "acc": acc, "rho": rho, "alpha": a, "cg_iters": k}


# ---------------------------------------------------------------------------------------------
# Data: bench/torch_data.py, as torch tensors.

def load(run, data_dir):
    from torch_data import load_arrays

    return [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in load_arrays(run, data_dir)]


def train(args):
    dtype = torch.float64 if args.float64 else torch.float32
    (xtr, ytr), (xte, yte) = load(args.run, args.data)
    if args.run == "mnist":
        net, numpy_seed = mlp(784, [20, 20, 20], 10), 10
    else:
        net, numpy_seed = conv_net(ARCHITECTURES["architecture_1"], (1, 28, 28), 10), 1
    params = [torch.from_numpy(p).to(dtype) for p in net.init_numpy(numpy_seed)]
    opt = SGN(net, params, gv=args.gv)
    n, bs = len(ytr), args.batch_size
    order = list(range(n))
    rng = random.Random(args.seed)  # the seed's order: random.seed(seed), one shuffle per epoch
    record = {"avg_loss": [], "acc": [], "test_acc": [], "epoch_time": [], "rho": [], "alpha": []}
    t0 = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        rng.shuffle(order)
        idx = torch.tensor(order)
        steps = (n + bs - 1) // bs
        if args.max_steps:
            steps = min(steps, args.max_steps)
        loss_sum = acc_sum = 0.0
        for s in range(steps):
            rows = idx[s * bs : (s + 1) * bs]
            rec = opt.step(xtr[rows].to(dtype), ytr[rows])
            loss_sum += rec["loss"]
            acc_sum += rec["acc"]
            record["rho"].append(rec["rho"])
            record["alpha"].append(rec["alpha"])
            if args.verbose:
                print(f"  step {s + 1}/{steps} loss {rec['loss']:.4f} rho {rec['rho']:.3g} "
                      f"a {rec['alpha']:.3g} cg {rec['cg_iters']}", file=sys.stderr)
        correct = 0
        with torch.no_grad():
            for s in range(0, len(yte), bs):
                z = net.forward(opt.params(), xte[s : s + bs].to(dtype))
                correct += (z.argmax(1) == yte[s : s + bs]).sum().item()
        record["avg_loss"].append(loss_sum / steps)
        record["acc"].append(acc_sum / steps)
        record["test_acc"].append(correct / len(yte))
        record["epoch_time"].append(time.perf_counter() - t0)
        prev = record["epoch_time"][-2] if epoch > 1 else 0
        print(f"epoch {epoch}: {record['epoch_time'][-1] - prev:.2f} s, loss "
              f"{record['avg_loss'][-1]:.4f}, train acc {record['acc'][-1]:.4f}, test acc "
              f"{record['test_acc'][-1]:.4f}", file=sys.stderr)
    print(json.dumps({**record, "about": about()}))


# ---------------------------------------------------------------------------------------------
# The products benchmark (bench/products_cases.ts: same networks, batches, products).

WORKLOADS = [
    ("W1 MLP 784-20-20-20-10, batch 1000", lambda: mlp(784, [20, 20, 20], 10), (784,), 1000, 10),
    ("W2 MLP 784-512-512-10, batch 1000", lambda: mlp(784, [512, 512], 10), (784,), 1000, 10),
    ("W3 CIFAR-10 architecture_4, batch 128",
     lambda: conv_net(ARCHITECTURES["architecture_4"], (3, 32, 32), 10), (3, 32, 32), 128, 3),
    ("W4 Fashion architecture_1, batch 1000",
     lambda: conv_net(ARCHITECTURES["architecture_1"], (1, 28, 28), 10), (1, 28, 28), 1000, 3),
]


def product_methods(net, params, x, labels, v, u):
    """Every product (bench/products_cases.ts's PRODUCTS) by each way PyTorch 1.13 offers: the
    report takes the fastest, so that ours is compared with PyTorch at its best."""

    def loss_grad():
        ps = with_grad(params)
        return torch.autograd.grad(loss_of(net.forward(ps, x), labels), ps)

    lins = {}

    def cached(kind):
        def run():
            if kind not in lins:  # recorded once, as CG records one forward pass per step
                lins[kind] = (Linearization if kind == "retained" else LinearizationForward)(net, params, x)
            return lins[kind].ggnvp(v)

        return run

    return {
        "forward": {"forward": lambda: net.forward(params, x)},
        "loss+grad": {"backward": loss_grad},
        "J v": {
            "forward_ad": lambda: jvp_forward(net, params, x, v),
            "functorch.jvp": lambda: jvp_functorch(net, params, x, v),
            "double backward": lambda: jvp_double(net, params, x, v),
        },
        "J^T u": {"backward": lambda: vjp(net, params, x, u)},
        "G v": {
            "forward_ad + backward": lambda: ggnvp_forward(net, params, x, v),
            "functorch jvp + vjp": lambda: ggnvp_functorch(net, params, x, v),
            "double backward": lambda: ggnvp_double(net, params, x, v),
        },
        "G v (cached)": {
            "retained graph, double backward": cached("retained"),
            "retained graph, forward_ad": cached("forward"),
        },
        "H v": {
            "reverse over reverse": lambda: hvp_reverse(net, params, x, labels, v),
            "forward over reverse": lambda: hvp_forward(net, params, x, labels, v),
        },
    }


def products(args):
    """ms per product, best of --trials timings of `reps` products (as products_report.ts: 10 on
    W1 and W2, 3 on W3 and W4), after one warm-up round; a JSON line per product, with the
    fastest method's time as "ms" and every method's in "methods"."""
    dtype = torch.float64 if args.float64 else torch.float32
    torch.manual_seed(1)
    for label, make, shape, batch, reps in WORKLOADS:
        if args.only not in label:
            continue
        net = make()
        params = [torch.from_numpy(p).to(dtype) for p in net.init_numpy(1)]
        x = torch.rand(batch, *shape, dtype=dtype)
        labels = torch.arange(batch) % 10
        v = [torch.randn(p.shape, dtype=dtype) for p in params]
        u = torch.randn(batch, 10, dtype=dtype)
        for name, methods in product_methods(net, params, x, labels, v, u).items():
            times = {}
            for method, run in methods.items():
                for _ in range(reps):  # warm-up
                    run()
                best = float("inf")
                for _ in range(args.trials):
                    t0 = time.perf_counter()
                    for _ in range(reps):
                        run()
                    best = min(best, (time.perf_counter() - t0) / reps)
                times[method] = best * 1e3
            fastest = min(times, key=times.get)
            line = {"workload": label, "product": name, "ms": times[fastest], "method": fastest,
                    "methods": times, "reps": reps, "dtype": str(dtype).split(".")[-1]}
            print(json.dumps(line), flush=True)


def check(_args):
    """Every product by every method, and optionally one SGN step, on one case (JSON on stdin:
    MLP sizes or a conv-net spec, float64 values); used by tests/torch_port_test.ts."""
    case = json.load(sys.stdin)
    t = lambda a, shape: torch.tensor(a, dtype=torch.float64).reshape(shape)
    if "spec" in case:
        net = conv_net(case["spec"], case["input_shape"], case["classes"])
    else:
        sizes = case["sizes"]
        net = mlp(sizes[0], sizes[1:-1], sizes[-1], case.get("activation", "sigmoid"))
    params = [t(p, s) for p, s in zip(case["params"], net.shapes)]
    v = [t(p, s) for p, s in zip(case["v"], net.shapes)]
    x = t(case["x"], [-1, *case["input_shape"]])
    labels = torch.tensor(case["labels"])
    u = t(case["u"], [len(labels), -1])
    ps = with_grad(params)
    loss = loss_of(net.forward(ps, x), labels)
    out = {"loss": loss.detach(), "grad": torch.autograd.grad(loss, ps)}
    for name, methods in product_methods(net, params, x, labels, v, u).items():
        out[name] = {method: run() for method, run in methods.items()}
    for gv in ("retained", "forward"):
        if f"sgn_{gv}" in case:  # SGN steps on the case's batch
            opt = SGN(net, params, gv=gv, **case[f"sgn_{gv}"])
            records = [opt.step(x, labels) for _ in range(case.get("sgn_steps", 1))]
            out[f"sgn_{gv}"] = {"records": records, "params": opt.params()}
    enc = lambda o: (o.reshape(-1).tolist() if torch.is_tensor(o)
                     else [enc(i) for i in o] if isinstance(o, (list, tuple))
                     else {k: enc(w) for k, w in o.items()} if isinstance(o, dict) else o)
    print(json.dumps(enc(out)))


def about():
    libs = set()
    try:
        with open("/proc/self/maps") as fh:
            libs = {l.split()[-1].split("/")[-1] for l in fh if "blas" in l or "dnnl" in l}
    except OSError:
        pass
    dnnl = torch.backends.mkldnn.is_available()
    return (f"torch {torch.__version__} ({sys.executable}), {torch.get_num_threads()} threads, "
            f"oneDNN {'on' if dnnl else 'off'}, BLAS {','.join(sorted(libs)) or '?'} "
            f"(OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["train", "products", "check", "about"])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--run", choices=["mnist", "fashion"], default="mnist")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--float64", action="store_true")
    ap.add_argument("--data", default="", help="a folder of the four IDX files (plain or .gz)")
    ap.add_argument("--only", default="")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--max-steps", type=int, default=0, help="at most this many steps an epoch (quick checks)")
    ap.add_argument("--gv", choices=["retained", "forward"], default="retained",
                    help="CG's G v: the step's recorded graph for J v (double backward) and J^T "
                    "(retained), or J v by forward mode each time (forward)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    {"train": train, "products": products, "check": check, "about": lambda a: print(about())}[
        args.command
    ](args)


if __name__ == "__main__":
    main()
