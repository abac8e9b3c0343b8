"""RunDir: one place names a run's files, and finds only that run's checkpoints."""
from pretrain.run.run_dir import RunDir, runs_in


def test_a_run_finds_its_own_checkpoints_only(tmp_path):
    for name in ('vanilla_1_6.25%.pth', 'vanilla_1_step500.pth', 'vanilla_1_100.0%.pth.tmp', 'vanilla_1_2_50.0%.pth',
                 'vanilla_1_notes.pth', 'vanilla_1.csv', 'vanilla_1_valid.csv', 'vanilla_1_2.csv'):
        (tmp_path / name).write_text('')
    run = RunDir(tmp_path, 'vanilla_1')
    assert [p.name for p in run.checkpoint_files()] == ['vanilla_1_6.25%.pth', 'vanilla_1_step500.pth']
    assert [p.name for p in RunDir(tmp_path, 'vanilla_1_2').checkpoint_files()] == ['vanilla_1_2_50.0%.pth']
    assert run.valid_csv.name == 'vanilla_1_valid.csv' and run.checkpoint('step7') == tmp_path / 'vanilla_1_step7.pth'
    assert RunDir.of_train_csv(run.train_csv) == run
    (tmp_path / 'other_3_export').mkdir()
    assert runs_in(tmp_path) == ['other_3', 'vanilla_1', 'vanilla_1_2']
