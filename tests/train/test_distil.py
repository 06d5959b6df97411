"""Progressive distillation of F2I (``echokdm train f2i-distil``): the DDIM algebra, learning on a fixed batch (the
student's one step comes closer to the teacher's two), and an end-to-end run whose student the pipeline runs."""

import numpy as np
import pytest
import torch
from a4c_shapes import a4c_labels

from echokdm.config import load_config
from echokdm.errors import InputError
from echokdm.keypoints import extract_keypoints
from echokdm.models.diffusion import sampling_scheduler
from echokdm.pipeline import EchoKDMPipeline
from echokdm.train.distil import F2IDistilRunConfig, F2IDistilTask, ddim_step
from echokdm.train.registry import train


def _task(teacher_steps: int, student_steps: int) -> F2IDistilTask:
    cfg = {"data": {"size": 32}, "distil": {"teacher_steps": teacher_steps, "student_steps": student_steps}}
    return F2IDistilTask(load_config(cfg, F2IDistilRunConfig))


@pytest.mark.parametrize("t", [899, 99])
def test_ddim_step_is_diffusers_step(t):
    sched = sampling_scheduler(True)
    sched.set_timesteps(10)
    torch.manual_seed(0)
    x0, z = 2 * torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8)  # x0 beyond [-1, 1]: clipping order matters
    alphas = torch.cat([sched.alphas_cumprod, torch.ones(1)])
    mine = ddim_step(x0, z, alphas[[t, t]], alphas[[t - 100, t - 100]], clip=True)
    torch.testing.assert_close(mine, sched.step(x0, t, z).prev_sample)


def test_windows_follow_the_teachers_steps():
    assert _task(10, 5).windows.tolist() == [[999, 899, 799], [799, 699, 599], [599, 499, 399], [399, 299, 199],
                                             [199, 99, -1]]
    assert _task(10, 2).windows[:, [0, -1]].tolist() == [[999, 499], [499, -1]]
    with pytest.raises(InputError, match="not made of the teacher"):
        _task(10, 4)


def test_one_step_of_the_target_lands_where_the_teachers_steps_land():
    task = _task(10, 5)
    torch.manual_seed(0)
    teacher = task.teacher(torch.device("cpu"))
    z, cond = torch.randn(5, 1, 32, 32), torch.randn(5, 4, 32, 32)
    window = torch.arange(5)
    goal = task.target(z, cond, window)
    path, a = task.windows[window], task.alphas
    x = z
    for i in range(2):  # the teacher's two DDIM steps
        with torch.no_grad():
            x = ddim_step(teacher(torch.cat([x, cond], 1), path[:, i]).sample, x, a[path[:, i]], a[path[:, i + 1]],
                          clip=True)
    torch.testing.assert_close(ddim_step(goal, z, a[path[:, 0]], a[path[:, -1]], clip=False), x, atol=1e-4, rtol=1e-4)


def test_training_brings_the_students_step_closer_to_the_teachers_two():
    task = _task(2, 1)
    torch.manual_seed(0)
    frames = torch.rand(2, 4, 1, 32, 32)
    batch = {"source": frames[0], "target": (frames[0] + 0.1 * frames[1]).clamp(0, 1),
             "flow": torch.randn(4, 2, 32, 32)}
    cpu = torch.device("cpu")
    student = task.teacher(cpu).__class__.from_config(task.teacher(cpu).config)
    student.load_state_dict(task.teacher(cpu).state_dict())
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-4)

    def loss() -> torch.Tensor:
        torch.manual_seed(1)  # the same noise each time: one step of the student against two of the teacher
        return task.training_step(student, batch, cpu)

    with torch.no_grad():
        before = float(loss())  # the student is the teacher: its one step against its own two
    for _ in range(30):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    with torch.no_grad():
        after = float(loss())
    assert after < 0.2 * before, (before, after)  # measured: 0.0042 -> 0.00027


def test_f2i_distil_trains_a_student_the_pipeline_runs(tmp_path):
    cfg = {
        "train": {"epochs": 1, "batch_size": 8, "lr": 1e-4, "threads": 1, "tensorboard": False},
        "data": {"size": 96, "train_loops": 1, "val_loops": 1, "every": 6, "cache_dir": str(tmp_path / "cache"),
                 "flow_source": "truth", "crop": 64},
        "distil": {"teacher_steps": 2, "student_steps": 1},
    }
    m = train("f2i-distil", cfg, tmp_path / "student").metrics
    assert 0 < m["val_match"] < 0.05 and 0 < m["val_match_teacher"] < 0.05 and m["val_psnr"] > 20, m
    pipe = EchoKDMPipeline.from_weights(f2i=str(tmp_path / "student" / "model.safetensors"))
    ed, es = (a4c_labels((96, 96), a=a, b=b, base=(48.0, 75.0)) for a, b in ((32.0, 16.0), (27.0, 13.0)))
    frame = np.choose(ed, [0.3, 0.1, 0.8, 0.1]).astype(np.float32)  # background, cavity, wall, LA
    out = pipe(frame, extract_keypoints(ed, 40), extract_keypoints(es, 40), num_inference_steps=1,
               generator=torch.Generator().manual_seed(0))
    assert out.frames.shape == (1, 96, 96) and np.isfinite(out.frames).all()
