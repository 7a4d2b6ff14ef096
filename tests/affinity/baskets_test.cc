#include "affinity/baskets.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace shoal::affinity {
namespace {

const std::string kGroceries = std::string(SHOAL_SHARED_DATA) + "/groceries/groceries.csv";

TEST(ItemDictionaryTest, InternsLabelsExactlyAndFindsThem) {
  ItemDictionary dictionary;
  EXPECT_EQ(dictionary.Intern("milk"), 0u);
  EXPECT_EQ(dictionary.Intern("milk "), 1u);  // trailing space is part of the label
  EXPECT_EQ(dictionary.Intern("milk"), 0u);
  for (int k = 0; k < 1000; ++k) dictionary.Intern("item" + std::to_string(k));  // forces growth
  EXPECT_EQ(dictionary.size(), 1002u);
  EXPECT_EQ(dictionary.Find("item999").value(), 1001u);
  EXPECT_EQ(dictionary.Label(1), "milk ");
  EXPECT_FALSE(dictionary.Find("bread").has_value());
}

TEST(ParseBasketsTest, SplitsLinesKeepsLabelsAndCollapsesRepeats) {
  Result<BasketStore> store = ParseBaskets("a,b ,c\r\nb ,b ,a\n\nc");
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ASSERT_EQ(store->num_baskets(), 3u);
  EXPECT_EQ(store->dictionary().size(), 3u);
  EXPECT_EQ(store->Basket(0).size(), 3u);
  ASSERT_EQ(store->Basket(1).size(), 2u);  // "b ,b ,a" -> {b , a}
  EXPECT_EQ(store->dictionary().Label(store->Basket(1)[0]), "b ");
  EXPECT_EQ(store->dictionary().Label(store->Basket(2)[0]), "c");  // no final newline
  EXPECT_EQ(store->ItemCounts(), (std::vector<uint64_t>{2, 2, 2}));

  BasketFileOptions keep_empty;
  keep_empty.skip_empty_lines = false;
  EXPECT_EQ(ParseBaskets("a\n\nb\n", keep_empty)->num_baskets(), 3u);
}

TEST(ParseBasketsTest, RejectsEmptyLabelsWithTheLine) {
  Result<BasketStore> store = ParseBaskets("a,b\na,,b\n");
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Status::Code::kParseError);
  EXPECT_NE(store.status().message().find("line 2"), std::string::npos);
  EXPECT_FALSE(ParseBaskets("a,b,\n").ok());
  EXPECT_EQ(LoadBasketFile("/nonexistent/baskets.csv").status().code(),
            Status::Code::kIOError);
}

TEST(ParseBasketsTest, ParallelParseEqualsSequential) {
  std::string text;
  uint64_t state = 12345;
  for (int line = 0; line < 60000; ++line) {
    int size = 1 + line % 7;
    for (int k = 0; k < size; ++k) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      if (k > 0) text += ',';
      text += "product ";
      text += std::to_string((state >> 33) % (line < 30000 ? 300 : 600));  // new labels later
    }
    text += line % 1000 == 999 ? "\r\n" : "\n";
  }
  ASSERT_GT(text.size(), size_t{1} << 20);
  Context two;
  two.threads = 2;
  Result<BasketStore> one_thread = ParseBaskets(text);
  Result<BasketStore> two_threads = ParseBaskets(text, {}, two);
  ASSERT_TRUE(one_thread.ok() && two_threads.ok());
  EXPECT_EQ(one_thread->num_baskets(), 60000u);
  EXPECT_EQ(two_threads->dictionary().size(), one_thread->dictionary().size());
  for (ItemId id = 0; id < one_thread->dictionary().size(); ++id) {
    ASSERT_EQ(one_thread->dictionary().Label(id), two_threads->dictionary().Label(id));
  }
  EXPECT_TRUE(std::equal(one_thread->offsets().begin(), one_thread->offsets().end(),
                         two_threads->offsets().begin(), two_threads->offsets().end()));
  EXPECT_TRUE(std::equal(one_thread->items().begin(), one_thread->items().end(),
                         two_threads->items().begin(), two_threads->items().end()));
  // An error in the second half names the same line as the one-thread parse.
  std::string broken = text + "a,,b\n";
  Result<BasketStore> bad = ParseBaskets(broken, {}, two);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("line 60001"), std::string::npos)
      << bad.status().message();
}

// Figures from shared/data/groceries/README.md (arules summary(Groceries)).
TEST(LoadBasketFileTest, GroceriesMatchesPublishedSummary) {
  Result<BasketStore> store = LoadBasketFile(kGroceries);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ(store->num_baskets(), 9835u);
  EXPECT_EQ(store->dictionary().size(), 169u);
  EXPECT_EQ(store->num_occurrences(), 43367u);
  const ItemDictionary& dictionary = store->dictionary();
  EXPECT_TRUE(dictionary.Find("cream cheese ").has_value());
  EXPECT_FALSE(dictionary.Find("cream cheese").has_value());
  EXPECT_TRUE(dictionary.Find("roll products ").has_value());
  std::vector<uint64_t> counts = store->ItemCounts();
  EXPECT_EQ(counts[*dictionary.Find("whole milk")], 2513u);
  EXPECT_EQ(counts[*dictionary.Find("other vegetables")], 1903u);
  EXPECT_EQ(counts[*dictionary.Find("sausage")], 924u);
  std::vector<uint64_t> by_size(33, 0);
  for (size_t b = 0; b < store->num_baskets(); ++b) ++by_size[store->Basket(b).size()];
  EXPECT_EQ(by_size[1], 2159u);
  EXPECT_EQ(by_size[2], 1643u);
  EXPECT_EQ(by_size[6], 645u);
  EXPECT_EQ(by_size[32], 1u);
  std::vector<std::string> first;
  for (ItemId id : store->Basket(0)) first.push_back(dictionary.Label(id));
  EXPECT_EQ(first, (std::vector<std::string>{"citrus fruit", "semi-finished bread", "margarine",
                                             "ready soups"}));
}

}  // namespace
}  // namespace shoal::affinity
