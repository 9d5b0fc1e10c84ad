"""Profile of one joint solve (rewrite_rules, linear solver) of k world_vgg rules on cached keys at features.15: where the
time goes (cProfile, one torch thread). Usage: python benchmarks/profile_rules.py 100"""
import warnings, torch, cProfile, pstats, time, sys
warnings.simplefilter("ignore"); torch.set_num_threads(1)
sys.path.insert(0, "benchmarks")
from bench_rules import world_rules
from modeledit import load_model
from modeledit.layers import get_site
from modeledit.eval.datasets import load_dataset
from modeledit.stats import second_moment
from modeledit.rules import collect_rules, rewrite_rules
lm = load_model("world_vgg"); site = get_site(lm.model, -1)
ds = load_dataset("world:train:256", class_names=lm.class_names, size=lm.input_size)
x = torch.stack([ds[i][0] for i in range(len(ds))])
st = second_moment(lm, site, [x[i:i + 64] for i in range(0, len(x), 64)], progress=False)
k = int(sys.argv[1])
keys = collect_rules(lm, world_rules(lm, k), site)
t = time.perf_counter(); rewrite_rules(lm, keys, site, stats=st, solver="linear"); print("warm", time.perf_counter() - t)
pr = cProfile.Profile(); pr.enable(); t = time.perf_counter()
e = rewrite_rules(lm, keys, site, stats=st, solver="linear")
print("k", k, "s", time.perf_counter() - t, e.metrics["solve_seconds"])
pr.disable(); pstats.Stats(pr).sort_stats("cumulative").print_stats(25)
