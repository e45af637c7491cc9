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


def test_korean_questions_ask_for_a_korean_answer_english_prompts_unchanged():
    from app.rag.language import ANSWER_IN
    from app.rag.prompts import PromptMode, render_messages

    english = render_messages(PromptMode.zero_shot, "Where is Seoul?", "[1] Seoul is in Korea.")
    korean = render_messages(PromptMode.zero_shot, "서울은 어디에 있나요?", "[1] 서울은 한국에 있습니다.")
    assert ANSWER_IN[Language.ko] in korean[0].content
    assert ANSWER_IN[Language.ko] not in english[0].content
    assert korean[0].content.startswith(english[0].content)
