// CustomerSynth: draws the full event history of one customer of the synthetic shop from its
// planted segment, as compact records (GenEvent) that the writers turn into JSONL and CSV.
// Internal to the generate module.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "generate/shop_model.h"
#include "ingest/event.h"

namespace shoal::generate_internal {

enum Segment : int {
  kReplenishment = 0,
  kExplorer,
  kAbandoner,
  kLapsed,
  kOneTime,
  kWindowShopper,
};

// Which identifiers an event carries.
enum IdBits : uint8_t { kIdCustomer = 1, kIdEmail = 2, kIdAnonymous = 4, kIdPhone = 8 };

// Page kinds of page_view events.
enum PageKind : int8_t {
  kPageHome = 0,
  kPageCategory,
  kPageProduct,
  kPageSearch,
  kPageCart,
  kPageAccount,
  kPageBlog
};

struct GenLine {
  uint32_t product = 0;
  int32_t quantity = 1;
  int64_t unit_cents = 0;
  int64_t discount_cents = 0;  // on the whole line
};

struct GenEvent {
  int64_t time = 0;  // seconds since window day 0, 00:00:00 UTC
  uint32_t seq = 0;  // generation order: ties on time keep it
  EventType type = EventType::kIdentify;
  Channel channel = Channel::kUnknown;
  DeviceClass device = DeviceClass::kUnknown;
  uint8_t ids = 0;        // IdBits
  int8_t anon = -1;       // anonymous id index (0 web cookie, 1 app install)
  int8_t marketing = -1;  // consent: 1 opt-in, 0 opt-out
  int8_t page_kind = -1;
  bool mixed_case_email = false;  // the email written as a person typed it ("Anna.12@Example.com")
  bool about_other = false;       // referral: identifiers are those of customer `other`
  int32_t session = -1;
  int32_t order = -1;  // order / checkout number of this customer
  int32_t product = -1;
  int32_t category = -1;  // page_view of a category page
  int32_t quantity = 0;
  int64_t money = 0;  // price (views, cart) or total (order, return, checkout), cents
  int32_t dwell = -1;
  int32_t campaign = -1;
  int32_t query = -1;
  int32_t topic = -1;  // support topic or consent topic
  int32_t ticket = -1;
  uint32_t first_line = 0, num_lines = 0;
  uint64_t other = 0;  // referral: the referrer's customer index
};

// The fixed identity of a customer: pure function of (seed, index).
struct Identity {
  std::string customer_id;   // "C123"
  std::string email;         // "anna.123@example.com"
  std::string email_mixed;   // "Anna.123@Example.com"
  std::string phone;         // empty when the customer gave none
  std::string anonymous[2];  // web cookie, app install
  void Build(uint64_t seed, uint64_t customer_idx);
};

// Who the customer is before any event: segment, signup and end of buying. Pure function of
// (seed, index), so a customer can read another's header (referrals) without generating it.
struct CustomerHeader {
  int segment = 0;
  int32_t signup_day = 0;
  int32_t active_end_day = 0;  // last day with an order (lapsed: the lapse start), else today
};
CustomerHeader MakeCustomerHeader(const ShopModel& model, uint64_t customer_idx);

extern const char* const kTicketTopics[];
constexpr int kNumTicketTopics = 5;

class CustomerSynth {
 public:
  explicit CustomerSynth(const ShopModel& model) : model_(model), rng_(0) {}
  // Fills events() (sorted by time, all inside the window) and lines() for customer `idx`.
  void Generate(uint64_t customer_idx);
  const std::vector<GenEvent>& events() const { return events_; }
  const std::vector<GenLine>& lines() const { return lines_; }
  const CustomerHeader& header() const { return header_; }
  const Identity& identity() const { return identity_; }

 private:
  struct Session {
    int32_t id = 0;
    Channel channel = Channel::kWeb;
    DeviceClass device = DeviceClass::kDesktop;
    int8_t anon = -1;
    int64_t t = 0;
  };
  struct Basket {
    uint32_t first_line = 0, num_lines = 0;
    int64_t total = 0;
  };

  GenEvent& Add(EventType type, int64_t t);
  int64_t TimeOfDay();
  int64_t SessionTime(int32_t day);
  int32_t Clock(int32_t day) const;
  Session StartSession(int64_t t, bool may_be_anonymous, bool pre_signup = false);
  void Tag(GenEvent& e, const Session& s) const;
  void EndSession(Session& s);
  void PageView(Session& s, PageKind kind, int32_t category, int32_t product);
  void ProductView(Session& s, uint32_t product, int dwell_lo, int dwell_hi);
  void Search(Session& s, int category);
  void CartAdd(Session& s, uint32_t product, int quantity, bool remove);
  int32_t CheckoutStart(Session& s, int64_t total);

  uint32_t PickProduct(int category, double quantile, int32_t day);
  double Quantile();
  int PickCategoryForBrowsing(int32_t day);
  int RandomLaunchedCategory(int group, int32_t day);
  void AddLine(std::vector<int>& basket_categories, uint32_t product, int quantity);
  Basket BuildBasket(int32_t day);
  void OnlineOrder(int32_t day, int views, double search_p);
  void StoreOrder(int32_t day);
  void PlaceOrder(int64_t t, const Session* s, const Basket& basket, int32_t order_no, int32_t day);
  void MaybeReturn(int64_t order_t, const Basket& basket, int32_t order_no);
  void Ticket(int64_t t, int topic);
  void BrowseSession(int32_t day);
  void Emails(int32_t opt_out_day);

  void Replenishment();
  void Explorer();
  void Abandoner();
  void Lapsed();
  void OneTime();
  void WindowShopper();

  const ShopModel& model_;
  Rng rng_;
  CustomerHeader header_;
  Identity identity_;
  std::vector<GenEvent> events_;
  std::vector<GenLine> lines_;
  int64_t signup_t_ = 0;
  int32_t sessions_ = 0, orders_ = 0, tickets_ = 0;
  bool linked_[2] = {false, false};
  bool uses_app_ = false;
  DeviceClass primary_device_ = DeviceClass::kDesktop;
  std::vector<int> favourite_categories_;
  std::vector<uint32_t> favourite_products_;
  std::vector<int> bought_categories_;
  double promo_share_ = 0;
  int32_t last_order_day_ = -1;
};

}  // namespace shoal::generate_internal
