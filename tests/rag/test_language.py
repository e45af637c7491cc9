from app.rag.language import REFUSALS, Language, is_in_language, language_of, refusal_for


def test_language_by_script():
    assert language_of("ragqa는 GPU가 필요한가요?") is Language.ko
    assert language_of("Does ragqa need a GPU?") is Language.en
    assert language_of("What does 서울 mean?") is Language.en


def test_refusal_in_the_question_language():
    assert refusal_for("서울은 어디에 있나요?") == REFUSALS[Language.ko]
    assert refusal_for("Where is Seoul?") == REFUSALS[Language.en]


def test_answer_language():
    assert is_in_language("우체통은 빨간색입니다 [1].", Language.ko)
    assert not is_in_language("The mailbox is red [1].", Language.ko)
    assert is_in_language("The mailbox is red.", Language.en)
    assert is_in_language("1999 [2]", Language.ko)  # no letters: nothing to judge
