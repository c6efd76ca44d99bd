"""Filter parsing: Entra's matching filters are planned as index lookups; everything else scans."""

import pytest

from scim.errors import ScimError
from scim.filters import MAX_FILTER_LENGTH, IndexLookup, fold, parse_filter
from scim.schemas import ScimGroup


@pytest.mark.parametrize(
    ("text", "lookup"),
    [
        ('userName eq "Test_User"', IndexLookup("userName", "Test_User")),
        ('USERNAME eq "a"', IndexLookup("userName", "a")),
        ('externalId eq "0a21f0f2"', IndexLookup("externalId", "0a21f0f2")),
        ("externalId eq jyoung", IndexLookup("externalId", "jyoung")),
        ('id eq "abc"', IndexLookup("id", "abc")),
        ('emails[type eq "work"].value eq "a@b.com"', IndexLookup("email", "a@b.com")),
        ('emails.value eq "a@b.com"', IndexLookup("email", "a@b.com")),
        ('id eq "u1" and manager eq "m1"', IndexLookup("id", "u1")),
        ('userName eq "x" and title pr', IndexLookup("userName", "x")),
    ],
)
def test_matching_filters_are_index_lookups(text, lookup):
    assert parse_filter(text).lookup == lookup


@pytest.mark.parametrize(
    "text",
    ['userName sw "a"', 'userName eq "a" or userName eq "b"', "title pr", 'not (userName eq "a")', 'userName ne "a"'],
)
def test_other_filters_scan(text):
    assert parse_filter(text).lookup is None


def test_unquoted_values_are_quoted_but_quoted_text_is_untouched():
    assert str(parse_filter('displayName eq "a eq b"').predicate) == 'displayName eq "a eq b"'
    assert str(parse_filter("userName sw O").predicate) == 'userName sw "O"'
    assert (
        str(parse_filter("meta.created gt 2015-10-10T14:38:21Z").predicate) == 'meta.created gt "2015-10-10T14:38:21Z"'
    )


def test_manager_reference_check_targets_the_enterprise_manager():
    predicate = str(parse_filter('id eq "u" and manager eq "m"').predicate)
    assert predicate.endswith('urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m"')


@pytest.mark.parametrize(
    "text", ["foo", 'userName eq "unterminated', "userName xx 1", "((", "x" * (MAX_FILTER_LENGTH + 1)]
)
def test_bad_filters_are_invalid_filter(text):
    with pytest.raises(ScimError) as raised:
        parse_filter(text)
    assert (raised.value.status, raised.value.scim_type) == (400, "invalidFilter")


def test_fold_is_case_and_normalisation_insensitive():
    assert fold("ALICE@Example.COM") == fold("alice@example.com")
    assert fold("e\u0301") == fold("\u00e9")


@pytest.mark.parametrize(
    ("text", "exact"),
    [
        ('userName eq "Alice@Example.com"', True),
        ('externalId eq "a1"', True),
        ('id eq "0123abcd"', True),
        ('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "a"', True),
        ('userName eq "a" and active eq true', False),
        ('emails[type eq "work"].value eq "a@example.com"', False),
        ('userName eq "a" or userName eq "b"', False),
        ('not (userName eq "a")', False),
        ('userName sw "a"', False),
    ],
)
def test_only_a_single_equality_on_a_whole_key_is_decided_by_the_key(text: str, exact: bool):
    assert parse_filter(text).exact is exact


def test_a_key_decided_filter_compares_as_the_attribute_does():
    by_name = parse_filter('userName eq "ALICE@example.com"')
    assert by_name.key_matches("alice@EXAMPLE.com")
    assert not by_name.key_matches("alice@example.org")
    assert not by_name.key_matches(None)
    by_external_id = parse_filter('externalId eq "A1"')
    assert by_external_id.key_matches("A1")
    assert not by_external_id.key_matches("a1")  # externalId is case-exact
    group = parse_filter('displayName eq "sales"', ScimGroup)
    assert group.exact and group.key_matches("Sales")
    assert not parse_filter('id eq "g" and members[value eq "u"]', ScimGroup).exact
