"""ROS 2 package `inril` (ament_python): the ROS-free learning core, the simulated tasks, config and launch files.

`sim/` installs under the import name `inril_sim` (DESIGN.md §2) so no top-level package called `sim` exists.
"""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "inril"

core_packages = find_packages(include=["inril_core", "inril_core.*"])
sim_packages = ["inril_sim"] + [
    "inril_sim." + p for p in find_packages(where="sim")
]

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=core_packages + sim_packages,
    package_dir={"inril_sim": "sim"},
    package_data={"inril_sim": ["assets/*.xml", "assets/**/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/config", glob("config/*.yaml")),
        ("share/" + PACKAGE + "/config/tasks", glob("config/tasks/*.yaml")),
        ("share/" + PACKAGE + "/config/tasks/furniture", glob("config/tasks/furniture/*.yaml")),
        ("share/" + PACKAGE + "/config/algos", glob("config/algos/*.yaml")),
        ("share/" + PACKAGE + "/config/nodes", glob("config/nodes/*.yaml")),
        ("share/" + PACKAGE + "/config/dds", glob("config/dds/*.xml")),
        ("share/" + PACKAGE + "/launch", glob("launch/*.py")),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="inril developers",
    maintainer_email="inril@example.invalid",
    description="IN-RIL: interleaved RL and imitation fine-tuning of diffusion policies, in sim and over ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": ["inril = inril_core.cli:main"],
        "gymnasium.envs": ["inril = inril_sim:register_envs"],
    },
)
