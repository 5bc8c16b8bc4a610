"""A student's work is never overwritten: work/ seeding, course updates, `authoring student`."""

import shutil
import subprocess
import sys

import nbformat
import pytest

from course_utils import authoring, workspace
from course_utils.authoring import ROOT


def _notebook(text):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(text)])
    return nbformat.writes(nb)


@pytest.fixture
def course(tmp_path):
    course_dir, work_dir = tmp_path / "notebooks", tmp_path / "work"
    course_dir.mkdir()
    (course_dir / "01_a.ipynb").write_text(_notebook("a = 1"))
    (course_dir / "02_b.ipynb").write_text(_notebook("b = 1"))
    return course_dir, work_dir


def test_first_sync_copies_every_notebook(course):
    course_dir, work_dir = course
    report = workspace.sync(work_dir, course_dir)
    assert report.added == ["01_a.ipynb", "02_b.ipynb"]
    assert (work_dir / "01_a.ipynb").read_bytes() == (course_dir / "01_a.ipynb").read_bytes()


def test_an_edited_notebook_survives_a_course_update(course):
    course_dir, work_dir = course
    workspace.sync(work_dir, course_dir)
    edited = _notebook("a = 'my own work'")
    (work_dir / "01_a.ipynb").write_text(edited)
    (course_dir / "01_a.ipynb").write_text(_notebook("a = 2  # course update"))
    (course_dir / "02_b.ipynb").write_text(_notebook("b = 2  # course update"))
    (course_dir / "03_c.ipynb").write_text(_notebook("c = 1  # a new lesson"))
    report = workspace.sync(work_dir, course_dir)
    assert (work_dir / "01_a.ipynb").read_text() == edited, "the student's work was overwritten"
    assert report.kept == ["01_a.ipynb"] and report.updated == ["02_b.ipynb"]
    assert report.added == ["03_c.ipynb"]
    assert "course update" in (work_dir / "02_b.ipynb").read_text(), "untouched copies follow"
    message = "\n".join(report.lines(work_dir))
    assert "newer 01_a.ipynb" in message and "--side-by-side" in message
    assert not (work_dir / "01_a.course-update.ipynb").exists()


def test_side_by_side_writes_the_new_version_beside_the_edited_one(course):
    course_dir, work_dir = course
    workspace.sync(work_dir, course_dir)
    (work_dir / "01_a.ipynb").write_text(_notebook("a = 'mine'"))
    (course_dir / "01_a.ipynb").write_text(_notebook("a = 2"))
    report = workspace.sync(work_dir, course_dir, side_by_side=True)
    beside = work_dir / "01_a.course-update.ipynb"
    assert beside.read_bytes() == (course_dir / "01_a.ipynb").read_bytes()
    assert "mine" in (work_dir / "01_a.ipynb").read_text()
    assert "beside yours" in "\n".join(report.lines(work_dir))
    beside.write_text(_notebook("edited the update too"))  # then never overwritten either
    (course_dir / "01_a.ipynb").write_text(_notebook("a = 3"))
    workspace.sync(work_dir, course_dir, side_by_side=True)
    assert "edited the update too" in beside.read_text()


def test_no_course_notebooks_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = workspace.main(["--course-dir", str(tmp_path / "empty"),
                           "--work-dir", str(tmp_path / "work")])
    assert code == 2 and "no course notebooks" in capsys.readouterr().err


def test_work_folder_is_git_ignored():
    assert "work/" in (ROOT / ".gitignore").read_text().split()


def _generated_copies(tmp_path):
    solutions, notebooks = tmp_path / "solutions", tmp_path / "notebooks"
    shutil.copytree(ROOT / "solutions", solutions,
                    ignore=lambda d, names: [n for n in names if not n.startswith("00_")])
    written, refused = authoring.write_student_notebooks(solutions, notebooks)
    assert written == ["00_welcome.ipynb"] and refused == []
    return solutions, notebooks


def test_authoring_student_refuses_to_overwrite_a_hand_edited_copy(tmp_path):
    solutions, notebooks = _generated_copies(tmp_path)
    target = notebooks / "00_welcome.ipynb"
    nb = nbformat.read(target, as_version=4)
    nb.cells[0].source += "\nMy notes."
    nbformat.write(nb, target)
    edited = target.read_text()
    src = nbformat.read(solutions / "00_welcome.ipynb", as_version=4)
    src.cells[0].source += "\nA course update."
    nbformat.write(src, solutions / "00_welcome.ipynb")
    assert authoring.write_student_notebooks(solutions, notebooks) == ([], ["00_welcome.ipynb"])
    assert target.read_text() == edited
    written, refused = authoring.write_student_notebooks(solutions, notebooks, force=True)
    assert written == ["00_welcome.ipynb"] and refused == []
    backups = list((notebooks / ".backup").glob("00_welcome.*.ipynb"))
    assert len(backups) == 1 and backups[0].read_text() == edited
    assert "A course update." in target.read_text()


def test_authoring_student_updates_a_copy_nobody_edited(tmp_path):
    solutions, notebooks = _generated_copies(tmp_path)
    src = nbformat.read(solutions / "00_welcome.ipynb", as_version=4)
    src.cells[0].source += "\nA course update."
    nbformat.write(src, solutions / "00_welcome.ipynb")
    assert authoring.write_student_notebooks(solutions, notebooks) == (["00_welcome.ipynb"], [])


def test_check_message_does_not_send_students_to_an_instructor_command(tmp_path):
    out = subprocess.run([sys.executable, "-c", (
        "import sys; from course_utils import authoring as a; "
        "a.stale_student_notebooks = lambda: ['04_vae.ipynb']; "
        "sys.exit(a.main(['student', '--check']))")], capture_output=True, text=True)
    assert out.returncode == 1 and "out of date: notebooks/04_vae.ipynb" in out.stdout
    assert "work/" in out.stdout and "run `make student`)" not in out.stdout
