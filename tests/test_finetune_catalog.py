"""The GLUE / JGLUE catalogue: task names matched whatever their spelling, recipe facts by name,
and every task a reader knows described once."""
import pytest

from finetune.benchmarks import GLUE_FILES, JGLUE_FILES
from finetune.catalog import (GLUE_FACTS, GLUE_TASKS, JGLUE_FACTS, JGLUE_HUB_TASKS, JGLUE_TASKS, STS_RANGE,
                              canonical_name, facts_for_name, name_key)


def test_names_match_whatever_their_spelling():
    assert {name_key(n) for n in ('SST-2', 'sst_2', 'sst 2', 'Sst2')} == {'sst2'}
    assert canonical_name('marc_ja', list(JGLUE_FILES), 'JGLUE', '--task') == 'MARC-ja'
    assert canonical_name('JCOMMONSENSE-QA', list(JGLUE_FILES), 'JGLUE', '--task') == 'JCommonsenseQA'
    with pytest.raises(ValueError, match=r"^unknown GLUE task 'sts'; --task takes one of cola, sst2, .*, wnli or all$"):
        canonical_name('sts', list(GLUE_FILES), 'GLUE', '--task')


def test_recipe_facts_by_name():
    assert facts_for_name('STS-B') == facts_for_name('sts') == GLUE_FACTS['stsb']  # 'sts': Google's name
    assert facts_for_name('jsts')['label_range'] == STS_RANGE and facts_for_name('weather_food') == {}
    facts = facts_for_name('rte')
    facts['epochs'] = 1  # a copy: the catalogue stays as it is
    assert GLUE_FACTS['rte']['epochs'] == 10


def test_every_task_a_reader_knows_is_described_once():
    assert list(GLUE_FILES) == list(GLUE_TASKS) and set(GLUE_FACTS) <= set(GLUE_TASKS)
    assert set(JGLUE_FILES) | set(JGLUE_FACTS) <= set(JGLUE_TASKS)
    assert JGLUE_HUB_TASKS == ['MARC-ja', 'JCoLA', 'JSTS', 'JNLI']  # the classification and regression ones
    assert JGLUE_TASKS['JSTS'][3] == 'pearson'
