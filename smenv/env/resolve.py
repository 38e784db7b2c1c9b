"""Model facts + training requirements -> one EnvironmentPlan, every decision recorded with its reason.

Order of authority for the TensorFlow release: `--tf-version`, then the producer version the model
records, then (for formats that record only Keras) the Keras version, then a requirements pin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from smenv.env import companion_pins, options, releases
from smenv.env.bases import BaseAvailability, debian_suites, official_image
from smenv.env.fallback import nearest_loadable, obtainable_pythons
from smenv.env.gpu import CUDA_IMAGES, ROUTES_WITH_CUDA_IMAGE
from smenv.env.plan import Decision, EnvironmentPlan, Package, requirement_name
from smenv.env.releases import Release, UnknownRelease
from smenv.env.requirements import Requirement, Requirements
from smenv.errors import ExactReleaseUnavailable, ResolutionError, UsageError, WeightsOnly
from smenv.model.builder import ModelBuilder
from smenv.model.facts import H5, KERAS, KERAS_SAVEDMODEL, CompanionPackage, ModelFacts

# Names under which TensorFlow itself can appear in a requirements file.
TENSORFLOW_NAMES = ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tf-nightly", "tf-nightly-cpu", "tensorflow-intel")

# The HTTP server of the image's model server (smenv/runtime/serve; docs/serving.md says why waitress).
# 1.3.1 is the oldest release the server is tested on (tests/test_serve_waitress_versions.py) and the
# newest any cut-off in the release table leaves (2019), so the floor never empties a lock.
SERVER_PACKAGE = "waitress"
SERVER_REQUIREMENT = "waitress>=1.3.1"


@dataclass(frozen=True)
class ResolveOptions:
    tf_version: str | None = None
    python: str | None = None
    gpu: bool = False
    base_image: str | None = None
    as_of: str | None = None  # ISO date or datetime
    extra_packages: tuple[str, ...] = ()  # added by --fix
    exact: bool = False  # --exact: refuse rather than plan onto the nearest release that loads the model
    unsafe_deserialization: bool = False  # load with Keras safe_mode=False: the model's Lambda bytecode runs
    model_builder: ModelBuilder | None = None  # --model-builder: builds the model a weights-only file is read into
    bases: BaseAvailability = BaseAvailability()  # which Pythons' base images this host can obtain


@dataclass
class _Builder:
    decisions: list[Decision] = field(default_factory=list)
    packages: list[Package] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    exempt: list[str] = field(default_factory=list)

    def decide(self, topic: str, choice: str, reason: str, warning: bool = False) -> None:
        self.decisions.append(Decision(topic, choice, reason, "warning" if warning else "info"))


def resolve(facts: ModelFacts, reqs: Requirements | None, opts: ResolveOptions) -> EnvironmentPlan:
    options.check(opts.python, opts.as_of, opts.tf_version)
    reqs = reqs or Requirements()
    b = _Builder()
    _check_builder(facts, opts)
    release = _choose_tensorflow(facts, reqs, opts, b)
    release, exact_release = _nearest_if_unobtainable(facts, release, opts, b)
    python = _choose_python(release, opts, b)
    if opts.gpu and release.gpu_route in ROUTES_WITH_CUDA_IMAGE and not opts.base_image:
        python = _python_of_cuda_image(release, b)
    legacy_keras = _keras_policy(facts, release, b)
    if not legacy_keras and release.keras_major == 3 and "tf-keras" in {requirement_name(e) for e in opts.extra_packages}:
        legacy_keras = True  # --fix added tf-keras: Keras 2 loading must be switched on with it
        b.decide("keras", "tf-keras (legacy)", "--fix added tf-keras for a Keras 2 model; TF_USE_LEGACY_KERAS=1 makes tf.keras use it")
    tf_package = _tensorflow_package(release, python, opts.gpu, b)
    b.packages.insert(0, Package(f"{tf_package}=={release.version}", "model", "the TensorFlow release chosen above"))
    excludes: tuple[str, ...] = ()
    if tf_package == "tensorflow-cpu":
        # Companions (tensorflow-text, tf-keras, ...) depend on `tensorflow`; tensorflow-cpu provides
        # the same module, so `tensorflow` is dropped from the CPU lock instead of installed twice.
        excludes = ("tensorflow",)
    b.exempt.append(tf_package.split("[")[0])
    _companions(facts, reqs, release, legacy_keras, b)
    _user_requirements(reqs, b)
    _server(reqs, b)
    for extra in opts.extra_packages:
        b.packages.append(Package(extra, "smenv --fix", "added to repair a diagnosed load failure"))
        b.exempt.append(requirement_name(extra))
    as_of = _as_of(facts, release, opts, b)
    env = [("TF_CPP_MIN_LOG_LEVEL", "2")]
    if legacy_keras:
        env.append(("TF_USE_LEGACY_KERAS", "1"))
    if opts.base_image:
        b.decisions.append(_given_base_image(opts.base_image))
    keras_loads = facts.format in (KERAS, H5, KERAS_SAVEDMODEL)
    if opts.unsafe_deserialization:
        _unsafe_deserialization(facts, keras_loads, b)
    if opts.model_builder:
        b.decide("loader", f"{opts.model_builder}, then load_weights",
                 f"the file holds weights only: the image calls {opts.model_builder}() from your --code for the model, "
                 "then reads the weights into it")
    return EnvironmentPlan(
        tensorflow_version=release.version,
        tensorflow_package=tf_package,
        python_candidates=python,
        python_forced=opts.python is not None,
        device="gpu" if opts.gpu else "cpu",
        gpu_route=release.gpu_route if opts.gpu else None,
        cuda=release.cuda if opts.gpu else None,
        cudnn=release.cudnn if opts.gpu else None,
        keras_major=2 if legacy_keras else release.keras_major,
        legacy_keras=legacy_keras,
        loader="keras" if keras_loads else "saved_model",
        base_image=opts.base_image,
        as_of=as_of,
        cutoff_exempt=tuple(sorted(set(b.exempt))),
        packages=tuple(b.packages),
        constraints=tuple(dict.fromkeys(b.constraints)),
        excludes=excludes,
        index=reqs.index,
        env=tuple(env),
        decisions=tuple(b.decisions),
        exact_release=exact_release,
        # Only a Keras loader has a safe mode: a plain SavedModel's plan, smenv.json and labels stay as they were.
        keras_safe_mode=not (opts.unsafe_deserialization and keras_loads),
        model_builder=str(opts.model_builder) if opts.model_builder else None,
    )


def _check_builder(facts: ModelFacts, opts: ResolveOptions) -> None:
    """A weights-only file needs --model-builder, and only such a file takes one."""
    builder = opts.model_builder
    if facts.weights_only and builder is None:
        raise WeightsOnly(
            "this file holds weights only: loading it needs the Python code that builds the model. Pass that code "
            "with --code FILE --model-builder MODULE:FUNCTION (a function returning the model, built), or save the "
            "whole model (model.save('model.keras')) and build from that",
            facts.path,
        )
    if builder is not None and not facts.weights_only:
        raise UsageError(f"--model-builder {builder} is for weights-only files (model.save_weights); this model holds "
                         "its architecture and loads without it", facts.path)
    if builder is not None and opts.unsafe_deserialization:
        raise UsageError("--unsafe-deserialization has no effect with --model-builder: the model is built by your code "
                         "and only weights are read from the file", facts.path)


def _unsafe_deserialization(facts: ModelFacts, keras_loads: bool, b: _Builder) -> None:
    """--unsafe-deserialization is the user's call (Keras makes it theirs too): said, as a warning."""
    lambdas = facts.lambda_layers
    if not keras_loads:
        b.decide("keras_safe_mode", "off", "--unsafe-deserialization has no effect: the model is loaded as a SavedModel, not by Keras")
        return
    what = f"its {lambdas} Lambda layer(s)' saved Python bytecode runs" if lambdas else "saved Python bytecode (Lambda layers) would run"
    b.decide("keras_safe_mode", "off",
             f"--unsafe-deserialization: Keras loads the model with safe_mode=False, so {what} whenever the image "
             "loads it; the image's labels say so (org.smenv.keras.safe_mode=false)", warning=True)


# -- Base image ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaseImageChoice:
    image: str
    install_python: bool  # the image has no Python: the Dockerfile installs the distribution's python3
    decision: Decision  # topic "base_image", for the plan (EnvironmentPlan.with_decision)


def choose_base_image(plan: EnvironmentPlan, python: str) -> BaseImageChoice:
    """The base image for `plan` on `python`, the Python the lock chose (known only after locking).

    --base-image wins; a GPU route that needs the CUDA runtime image gets it (it has no Python, so the
    Dockerfile installs Ubuntu's); else the official `python:X.Y-slim-SUITE` image, which `smenv build`
    obtains (docker/obtain_base.py).
    """
    if plan.base_image:
        return BaseImageChoice(plan.base_image, False, _given_base_image(plan.base_image))
    if plan.device == "gpu" and plan.gpu_route in ROUTES_WITH_CUDA_IMAGE:
        image, _ = CUDA_IMAGES[plan.cuda or ""]
        reason = (
            f"the CUDA {plan.cuda} / cuDNN {plan.cudnn} runtime image the GPU build of TensorFlow "
            f"{plan.tensorflow_version} needs; it has no Python, so the Dockerfile installs Ubuntu's python3 ({python})"
        )
        return BaseImageChoice(image, True, Decision("base_image", image, reason))
    image = official_image(python)
    suite = debian_suites().get(python)
    if suite is None:
        reason = (
            f"the official image for Python {python}; no Debian release ships Python {python}, so `smenv build` "
            "takes it from the engine or pulls it (from the base registry, if one is configured)"
        )
    else:
        reason = (
            f"the official image for Python {python} (Debian {suite}); `smenv build` takes it from the engine, "
            f"else pulls it, else builds it from Debian's own python3 (as `smenv base --python {python}` does)"
        )
    return BaseImageChoice(image, False, Decision("base_image", image, reason))


def _given_base_image(image: str) -> Decision:
    return Decision("base_image", image, "given with --base-image")


# -- TensorFlow ---------------------------------------------------------------------------------


def _choose_tensorflow(facts: ModelFacts, reqs: Requirements, opts: ResolveOptions, b: _Builder) -> Release:
    pins = [r for name in TENSORFLOW_NAMES for r in reqs.named(name) if not r.constraint]
    pin = pins[0] if pins else None
    if opts.tf_version:
        release, reason = _given_release(opts.tf_version)
        b.decide("tensorflow", release.version, reason)
        _report_pin(pin, release, "--tf-version", b)
        return release
    if facts.tensorflow_version:
        mapped = releases.for_producer(facts.tensorflow_version)
        reason = f"the model was written by TensorFlow {facts.tensorflow_version}"
        if mapped.note:
            reason += f"; {mapped.note}"
        b.decide("tensorflow", mapped.release.version, reason, warning=mapped.note is not None)
        _report_pin(pin, mapped.release, "the model", b)
        return mapped.release
    if facts.keras_version:
        mapped = releases.for_keras(facts.keras_version)
        reader = _release_the_pin_admits(pin, mapped.release, facts.keras_version)
        if reader is not None:
            b.decide(
                "tensorflow",
                reader.version,
                f"{pin.where} asks for {pin.name}{pin.specifier}, which excludes TensorFlow {mapped.release.version} "
                f"(the {facts.format} format records only Keras {facts.keras_version}); {reader.version} is the "
                "nearest release it admits that reads the model's files",
            )
            return reader
        b.decide("tensorflow", mapped.release.version, f"the {facts.format} format records only Keras: {mapped.note}")
        _report_pin(pin, mapped.release, f"Keras {facts.keras_version}", b)
        return mapped.release
    pinned = _pinned_release(pin)
    if pinned is not None:
        b.decide("tensorflow", pinned.version, f"the model records no version; {pin.where} pins it")
        return pinned
    raise ResolutionError(
        "the model records no TensorFlow or Keras version and requirements.txt pins none: pass --tf-version", facts.path
    )


def _nearest_if_unobtainable(facts: ModelFacts, release: Release, opts: ResolveOptions,
                             b: _Builder) -> tuple[Release, str | None]:
    """`release`, or, when no base for any of its Pythons can be obtained here, the nearest release that
    builds here and loads the model (env/fallback.py), with the exact one returned to be recorded.

    Choices the user made (--tf-version, --python, --base-image) are kept as given, as is a GPU build on
    a CUDA image, whose Python is the image's."""
    if opts.tf_version or opts.python or opts.base_image or obtainable_pythons(release, opts.bases):
        return release, None
    if opts.gpu and release.gpu_route in ROUTES_WITH_CUDA_IMAGE:
        return release, None
    newest = release.python[-1]
    why_not = (
        f"no base image for its Pythons ({', '.join(release.python)}) can be obtained here: "
        f"{opts.bases.why_not(newest)}"
    )
    if opts.exact:
        raise ExactReleaseUnavailable(
            f"--exact: TensorFlow {release.version} cannot be built here, {why_not}; pass --base-registry with a "
            f"registry that serves python:{newest} images, or drop --exact to use the nearest release that loads the model",
            facts.path,
        )
    nearest = nearest_loadable(facts.format, release, opts.bases)
    if nearest is None:
        return release, None
    topics = [d.topic for d in b.decisions]
    i = len(topics) - 1 - topics[::-1].index("tensorflow")
    b.decisions[i] = Decision(
        "tensorflow",
        nearest.release.version,
        f"{b.decisions[i].reason}. Not {release.version} itself: {why_not}. {nearest.release.version} is the oldest "
        f"release that builds here and loads this model: {nearest.why}. --exact refuses instead; a base registry "
        f"serving python:{newest} gives the exact release",
        "warning",
    )
    return nearest.release, release.version


def _given_release(text: str) -> tuple[Release, str]:
    """--tf-version: an exact release, or a minor (2.10) meaning its newest patch in the release table."""
    release = releases.get(text.strip())
    if release is not None:
        return release, "given with --tf-version"
    parts = text.strip().split(".")
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        release = releases.newest_patch(f"{int(parts[0])}.{int(parts[1])}")
        if release is not None:
            return release, f"given with --tf-version {text.strip()}: its newest patch release"
    raise UnknownRelease(f"--tf-version {text} is not a TensorFlow release on the index")


def _pinned_release(pin: Requirement | None) -> Release | None:
    if pin is None or not pin.specifier:
        return None
    spec = SpecifierSet(pin.specifier)
    matching = [r for r in releases.table() if spec.contains(r.v, prereleases=False)]
    return matching[-1] if matching else None


def _release_the_pin_admits(pin: Requirement | None, mapped: Release, keras_version: str) -> Release | None:
    """For a model that records only Keras: the release to use when a requirements pin excludes `mapped`.

    None when the pin admits `mapped` (a range such as `tensorflow>=2.0` is no conflict: the model's own
    release stays) or when no release it admits reads the files (a real conflict, reported by _report_pin).
    Otherwise the oldest minor at or above `mapped` that the pin admits (its newest patch): a newer Keras
    reads older files, not the other way round.
    """
    if pin is None or not pin.specifier:
        return None
    spec = SpecifierSet(pin.specifier)
    if spec.contains(mapped.v, prereleases=True):
        return None
    admitted = [
        r for r in releases.table()
        if spec.contains(r.v, prereleases=False) and r.v >= mapped.v and _keras_compatible(keras_version, r)
    ]
    if not admitted:
        return None
    first_minor = admitted[0].minor
    return [r for r in admitted if r.minor == first_minor][-1]


def _report_pin(pin: Requirement | None, chosen: Release, authority: str, b: _Builder) -> None:
    if pin is None:
        return
    if pin.specifier and SpecifierSet(pin.specifier).contains(chosen.v, prereleases=True):
        return
    b.decide(
        f"requirement:{pin.name}",
        f"{pin.name}=={chosen.version}",
        f"{pin.where} asks for {pin.name}{pin.specifier or ' (any version)'} but {authority} says TensorFlow "
        f"{chosen.version}; using {chosen.version} (pass --tf-version to choose the pin instead)"
        if pin.specifier
        else f"{pin.where} names {pin.name} without a version; using {chosen.version}",
        warning=bool(pin.specifier),
    )


def _keras_compatible(keras_version: str, release: Release) -> bool:
    try:
        return releases.for_keras(keras_version).release.keras_major == release.keras_major or (
            Version(keras_version.removesuffix("-tf")).major == 2 and release.keras_major == 3
        )
    except UnknownRelease:
        return False


# -- Python, device, Keras ----------------------------------------------------------------------


def _choose_python(release: Release, opts: ResolveOptions, b: _Builder) -> tuple[str, ...]:
    supported = sorted(release.python, key=lambda p: tuple(int(x) for x in p.split(".")), reverse=True)
    listed = ", ".join(reversed(supported))
    if opts.python:
        if opts.python not in supported:
            raise UsageError(
                f"--python {opts.python}: TensorFlow {release.version} has no wheels for Python {opts.python} (it supports {listed})"
            )
        b.decide("python", opts.python, "given with --python")
        return (opts.python,)
    if opts.base_image:  # the user's image decides; nothing to obtain
        obtainable = supported
    else:
        obtainable = [p for p in supported if opts.bases.how(p)]
    if not obtainable:
        b.decide(
            "python",
            supported[0],
            f"the newest Python TensorFlow {release.version} supports ({listed}); no base image for any of them "
            f"can be obtained on this host: {opts.bases.why_not(supported[0])}",
            warning=True,
        )
        return tuple(supported)
    reason = f"the newest Python TensorFlow {release.version} supports ({listed})"
    if not opts.base_image:
        # Not how it is obtained (the engine has it, a pull, Debian): that is the build's progress, not
        # the plan's, which goes into the image and must not differ with the engine's state.
        reason += " whose base image this host can obtain"
    skipped = [p for p in supported if p not in obtainable and _newer(p, obtainable[0])]
    if skipped:
        reason += f"; not {', '.join(skipped)}: {opts.bases.why_not(skipped[0])}"
    if len(obtainable) > 1:
        reason += "; an older one is tried if the requirements exclude it"
    b.decide("python", obtainable[0], reason)
    return tuple(obtainable)


def _newer(a: str, b: str) -> bool:
    return tuple(int(x) for x in a.split(".")) > tuple(int(x) for x in b.split("."))


def _python_of_cuda_image(release: Release, b: _Builder) -> tuple[str, ...]:
    image = CUDA_IMAGES.get(release.cuda or "")
    if image is None:
        raise ResolutionError(f"no CUDA {release.cuda} runtime image is known for TensorFlow {release.version}; pass --base-image")
    tag, ubuntu_python = image
    if ubuntu_python not in release.python:
        raise ResolutionError(
            f"the CUDA {release.cuda} image {tag} ships Python {ubuntu_python}, which TensorFlow {release.version} "
            f"does not support ({', '.join(sorted(release.python))}); pass --base-image with a matching Python"
        )
    b.decide("python", ubuntu_python, f"the Python of {tag}, the CUDA {release.cuda} / cuDNN {release.cudnn} runtime image TensorFlow {release.version} needs")
    return (ubuntu_python,)


def _tensorflow_package(release: Release, python: tuple[str, ...], gpu: bool, b: _Builder) -> str:
    if gpu:
        route = release.gpu_route
        package = {"pip-cuda": "tensorflow[and-cuda]", "tensorflow-gpu": "tensorflow-gpu"}.get(route, "tensorflow")
        detail = {
            "pip-cuda": f"CUDA {release.cuda} and cuDNN {release.cudnn} come as pip wheels (the and-cuda extra)",
            "tensorflow-gpu": f"the separate tensorflow-gpu package, on a CUDA {release.cuda} / cuDNN {release.cudnn} runtime base image",
            "cuda-base-image": f"the tensorflow wheel has GPU kernels but needs a CUDA {release.cuda} / cuDNN {release.cudnn} runtime base image",
        }.get(route, route)
        b.decide("device", f"gpu ({package})", detail)
        return package
    if all(p in release.cpu_wheel_python for p in python[:1]):
        b.decide("device", "cpu (tensorflow-cpu)", "no GPU asked for, and the CPU-only wheel is far smaller than the full one "
                 "(for example 197 vs 453 MiB for TensorFlow 2.15.1 on Python 3.11)")
        return "tensorflow-cpu"
    b.decide("device", "cpu (tensorflow)", f"no tensorflow-cpu wheel exists for {release.version} on Python {python[0]}")
    return "tensorflow"


def _keras_policy(facts: ModelFacts, release: Release, b: _Builder) -> bool:
    """True when a Keras 2 model must run on TF >= 2.16 through tf-keras (TF_USE_LEGACY_KERAS=1)."""
    keras3_weights = facts.weights_layout == "keras3-weights"  # Keras 3's .weights.h5, read by Keras 3 itself
    keras2_model = facts.format == KERAS_SAVEDMODEL or (facts.format == H5 and not keras3_weights) or (
        facts.format == KERAS and facts.keras_version is not None and facts.keras_version.startswith("2.")
    )
    if keras2_model and release.keras_major == 3:
        b.decide(
            "keras",
            f"tf-keras=={release.minor}.*",
            f"the model was saved by Keras 2 ({facts.keras_version or 'tf.keras'}) and TensorFlow {release.version} "
            "ships Keras 3, which cannot read it; tf-keras with TF_USE_LEGACY_KERAS=1 can",
        )
        return True
    if facts.format == KERAS and facts.keras_version and release.keras_major == 3:
        b.decide("keras", f"keras=={facts.keras_version}", "the exact Keras 3 release that saved the model")
    return False


# -- Packages -----------------------------------------------------------------------------------


def _companions(facts: ModelFacts, reqs: Requirements, release: Release, legacy_keras: bool, b: _Builder) -> None:
    needed = {c.name: c for c in facts.companion_packages}
    wanted = set(needed)
    if legacy_keras:
        wanted.add("tf-keras")
    if facts.format == KERAS and facts.keras_version and release.keras_major == 3 and not legacy_keras:
        b.packages.append(Package(f"keras=={facts.keras_version}", "model", "the Keras release that saved the model"))
        b.exempt.append("keras")
    for name in sorted(wanted | {r.name for r in reqs.installs() if companion_pins.known(r.name)}):
        spec = companion_pins.specifier(name, release)
        in_reqs = [r for r in reqs.named(name) if not r.constraint]
        if name in needed and not in_reqs:
            evidence = "; ".join(needed[name].evidence[:3])
            reason = f"the model needs it ({evidence}) and the requirements lack it"
        elif name == "tf-keras" and not in_reqs:
            reason = "Keras 2 models run on TensorFlow >= 2.16 only through tf-keras"
        else:
            reason = f"{in_reqs[0].where} asks for it" if in_reqs else "companion package"
        optional = _loads_without(facts, needed[name]) if name in needed and not in_reqs else ""
        if spec is None:
            if companion_pins.known(name):
                raise ResolutionError(
                    f"{name} has no release for TensorFlow {release.minor} ({companion_pins.describe(name)}); "
                    "choose a TensorFlow release it supports with --tf-version"
                )
            b.packages.append(Package(name, "model", reason + "; no version rule is known, resolved as of the cut-off date",
                                      optional))
            b.decide(f"companion:{name}", name, reason)
            continue
        requirement = f"{name}{spec}" if spec else name
        for r in in_reqs:
            if r.specifier and not _specs_overlap(r.specifier, spec):
                b.decide(
                    f"requirement:{name}",
                    requirement,
                    f"{r.where} asks for {name}{r.specifier}, which does not go with TensorFlow {release.version}; using {requirement}",
                    warning=True,
                )
        b.packages.append(Package(requirement, "companion rule", reason, optional))
        b.decide(f"companion:{name}", requirement, f"{reason}; {companion_pins.describe(name)}")
        if spec:  # pinned to TensorFlow's series: may be published after the cut-off date
            b.exempt.append(name)
    # Keep every known companion in step with TensorFlow even when it arrives as a dependency.
    for name in companion_pins.names():
        spec = companion_pins.specifier(name, release)
        if spec:
            b.constraints.append(f"{name}{spec}")


def _loads_without(facts: ModelFacts, companion: CompanionPackage) -> str:
    """Why the model loads without `companion`, or "" when it needs it.

    A Keras SavedModel whose only tie to the package is a layer class (no op of it in the graph) loads
    without it: Keras revives a layer whose class it cannot find from the functions the SavedModel saved
    with it (keras/saving/saved_model/load.py, KerasObjectLoader._load_layer: "If not, then revive from
    the SavedModel instead"). tf.Transform's TransformFeaturesLayer is the case met: its package pulls
    in Apache Beam, which does not lock from wheels for older TensorFlow releases."""
    if facts.format != KERAS_SAVEDMODEL or companion.ops:
        return ""
    return ("the model uses none of its ops, only its Keras classes, and Keras revives those from the "
            "functions saved in the SavedModel")


def _user_requirements(reqs: Requirements, b: _Builder) -> None:
    taken = {p.name for p in b.packages}
    for r in reqs.requirements:
        if r.name in TENSORFLOW_NAMES or r.name in taken:
            continue
        if r.constraint:
            b.constraints.append(r.text)
            continue
        b.packages.append(Package(r.text, f"requirements {r.where}"))
        if r.pinned_version() or r.url:
            b.exempt.append(r.name)


def _server(reqs: Requirements, b: _Builder) -> None:
    """waitress, for `python -m serve`: resolved with everything else, the user's own lines winning.

    Exempt from the as-of cut-off: the server faces the network and its fixes are security fixes
    (1.4.0 request smuggling, 3.0.1 CVE-2024-49768/49769), while the model never imports it, so a newer
    one changes nothing the model computes. It has no dependencies in any release, so the exemption
    cannot pull anything else past the cut-off.
    """
    theirs = [r for r in reqs.named(SERVER_PACKAGE) if not r.constraint]
    if theirs:
        # Their line is in the lock already (_user_requirements); ours only bounds it, so a pin older
        # than the server supports is a conflict uv reports, not a silent swap.
        b.constraints.append(SERVER_REQUIREMENT)
        where = f"{theirs[0].where} asks for {theirs[0].text}"
    else:
        b.packages.append(Package(SERVER_REQUIREMENT, "smenv", "the HTTP server of the image's model server (python -m serve)"))
        where = "added for the image's model server (python -m serve)"
    b.exempt.append(SERVER_PACKAGE)
    b.decide(
        "server",
        SERVER_REQUIREMENT,
        f"{where}; exempt from the as-of date: it faces the network, its newer releases fix security issues "
        "(request smuggling before 1.4.0, CVE-2024-49768/49769 before 3.0.1), the model never imports it, "
        "and it has no dependencies",
    )


def _specs_overlap(user: str, ours: str) -> bool:
    """A cheap check: does any version that satisfies `ours` on a tiny grid satisfy `user` too?"""
    try:
        u, o = SpecifierSet(user), SpecifierSet(ours)
    except Exception:
        return True
    probes = {s.version.rstrip(".*") for s in list(u) + list(o)}
    candidates = []
    for p in probes:
        try:
            v = Version(p)
        except Exception:
            continue
        candidates += [v, Version(f"{v.major}.{v.minor}.{v.micro + 1}"), Version(f"{v.major}.{v.minor}.99")]
    return any(o.contains(c) and u.contains(c) for c in candidates) if candidates else True


def _as_of(facts: ModelFacts, release: Release, opts: ResolveOptions, b: _Builder) -> str:
    if opts.as_of:
        when, reason = options.parse_as_of(opts.as_of), "given with --as-of"
    elif facts.saved_at:
        when, reason = _parse_when(facts.saved_at), "the date the model was saved"
    else:
        when, reason = _parse_when(release.release_date), f"the release date of TensorFlow {release.version} (the model records no save date)"
    text = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    b.decide(
        "as_of",
        text,
        f"{reason}: packages uploaded later are left out, so nothing newer than the model can drift in "
        "(packages pinned on purpose are exempt)",
    )
    return text


def _parse_when(text: str) -> datetime:
    """A date the model records (saved_at); a malformed one is the model's problem, not the user's."""
    when = options.parse_time(text)
    if when is None:
        raise ResolutionError(f"cannot read the date {text!r} (expected YYYY-MM-DD or an ISO 8601 time)")
    return when
