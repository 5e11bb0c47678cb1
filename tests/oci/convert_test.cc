// `ferry-image convert` end to end against Debian's docker-registry (plain HTTP, and htpasswd
// Basic auth): a layout made here, or an image pushed to the registry with skopeo, becomes a
// Ferry image; skopeo reads the result back (annotations, media types, the source's config with
// rootfs.diff_ids adjusted); the bootstrap layer unpacks to image/image.boot, which `ferry-image
// check` verifies against the pushed blobs; a second convert uploads nothing. Failures
// (unreachable registry, bad credentials, missing tag, corrupt or damaged layer) are one line,
// exit status 1, and no manifest at the target. Auth: anonymous, Basic, Bearer token; credentials
// from the flags or a docker config.json.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "oci/base64.h"
#include "oci/bootstrap_layer.h"
#include "oci/layout.h"
#include "oci/media_types.h"
#include "oci/registry_fixture.h"
#include "oci/test_image.h"

namespace ferry::oci {
namespace {

using test::RegistryConfig;
using test::RegistryServer;
using test::TempDir;

std::string ferry_image() {
  return std::string(FERRY_BINARY_DIR) + "/bin/ferry-image";
}

TEST(ConvertE2E, ALayoutBecomesAFerryImageInARegistry) {
  RegistryConfig rc;
  rc.auth = RegistryConfig::Auth::kBasic;
  RegistryServer server(rc);
  ASSERT_TRUE(server.ok());
  TempDir tmp;
  const auto img = test::make_test_image(tmp.path(), "convert");
  auto layout = OciLayout::create(tmp / "src");
  ASSERT_TRUE(layout.ok());
  ASSERT_TRUE(layout->write_blob(img.layer, img.layer_desc.media_type).ok());
  ASSERT_TRUE(layout->write_blob(img.config, img.config_desc.media_type).ok());
  ASSERT_TRUE(
      layout->set_tag(*layout->write_blob(img.manifest_bytes, std::string(media_type::kOciManifest)), "v1")
          .ok());

  const std::string creds = "alice:" + server.config().password;
  const std::string cmd = ferry_image() + " convert --source oci:" + tmp / "src:v1" + " --target " +
                          server.host() + "/ferry/conv:v1 --plain-http --target-creds '" + creds + "'";
  std::string out;
  ASSERT_EQ(ferry::test::run_shell(cmd + " 2>&1", &out), 0) << out;
  const auto summary = nlohmann::json::parse(out);
  ASSERT_EQ(summary["blobs"].size(), 1U);
  EXPECT_TRUE(summary["blobs"][0]["uploaded"].get<bool>());
  EXPECT_EQ(out.find(server.config().password), std::string::npos);
  // Again: everything is there already.
  ASSERT_EQ(ferry::test::run_shell(cmd + " 2>&1", &out), 0) << out;
  EXPECT_FALSE(nlohmann::json::parse(out)["blobs"][0]["uploaded"].get<bool>());

  ASSERT_EQ(ferry::test::run_shell("skopeo copy --src-tls-verify=false --src-creds '" + creds + "' docker://" +
                                 server.host() + "/ferry/conv:v1 oci:" + tmp / "back:v1 2>&1",
                             &out),
            0)
      << out;
  auto back = OciLayout::open(tmp / "back");
  ASSERT_TRUE(back.ok());
  auto mdesc = back->resolve("v1");
  ASSERT_TRUE(mdesc.ok());
  auto any = parse_manifest(*back->read_blob(*mdesc, kMaxManifestSize), mdesc->media_type);
  ASSERT_TRUE(any.ok()) << any.error().message;
  const auto& m = std::get<ImageManifest>(*any);
  ASSERT_EQ(m.layers.size(), 2U);
  EXPECT_EQ(m.layers[0].media_type, kFerryBlobMediaType);
  EXPECT_EQ(m.layers[0].annotations.at(std::string(kFerryBlobAnnotation)), "true");
  EXPECT_EQ(m.layers[1].media_type, media_type::kOciLayerGzip);
  EXPECT_EQ(m.layers[1].annotations.at(std::string(kFerryBootstrapAnnotation)), "true");
  auto config = ImageConfig::parse(*back->read_blob(m.config, kMaxConfigSize));
  ASSERT_TRUE(config.ok());
  EXPECT_NE(config->bytes().find("\"SALT=convert\""), std::string::npos) << config->bytes();
  ASSERT_EQ(config->diff_ids().size(), 2U);
  EXPECT_EQ(config->diff_ids()[0], m.layers[0].digest);

  ASSERT_EQ(ferry::test::run_shell("mkdir -p " + tmp / "x " + tmp / "blobs" + " && tar -xzf " +
                             back->blob_path(m.layers[1].digest) + " -C " + tmp / "x" + " && cp " +
                             back->blob_path(m.layers[0].digest) + " " + tmp / "blobs/"),
            0);
  ASSERT_EQ(
      ferry::test::run_shell(
          ferry_image() + " check " + tmp / "x/image/image.boot --blob-dir " + tmp / "blobs 2>&1", &out),
      0)
      << out;
  ASSERT_EQ(ferry::test::run_shell(ferry_image() + " inspect " + tmp / "x/image/image.boot --tree 2>&1", &out), 0)
      << out;
  EXPECT_NE(out.find("/etc/greeting"), std::string::npos) << out;
}

// A layout whose config carries an entrypoint, env, cmd and working dir; tagged v1.
std::string make_app_layout(const TempDir& tmp, const std::string& name, const std::string& salt) {
  const auto img = test::make_test_image(tmp.path(), salt);
  auto layout = OciLayout::create(tmp / name);
  EXPECT_TRUE(layout.ok());
  EXPECT_TRUE(layout->write_blob(img.layer, img.layer_desc.media_type).ok());
  auto config = nlohmann::json::parse(img.config);
  config["config"]["Entrypoint"] = {"/bin/app", "--serve"};
  config["config"]["Cmd"] = {"--port", "8080"};
  config["config"]["Env"] = {"PATH=/usr/bin:/bin", "SALT=" + salt};
  config["config"]["WorkingDir"] = "/srv";
  const std::string config_bytes = config.dump();
  auto config_desc = layout->write_blob(config_bytes, std::string(media_type::kOciConfig));
  EXPECT_TRUE(config_desc.ok());
  ImageManifest m = img.manifest;
  m.config = *config_desc;
  auto mdesc = layout->write_blob(serialize(m), std::string(media_type::kOciManifest));
  EXPECT_TRUE(mdesc.ok());
  EXPECT_TRUE(layout->set_tag(*mdesc, "v1").ok());
  return config_bytes;
}

std::string skopeo_raw(const std::string& ref, const std::string& extra = "") {
  std::string out;
  const int status = ferry::test::run_shell(
      "skopeo inspect --raw --tls-verify=false " + extra + " docker://" + ref + " 2>&1", &out);
  return status == 0 ? out : std::string();
}

// Whether the registry has a manifest under `ref` (skopeo, the independent reader).
bool has_manifest(const std::string& ref, const std::string& creds = "") {
  return !skopeo_raw(ref, creds.empty() ? "" : "--creds '" + creds + "'").empty();
}

// Runs convert; returns the exit status, with stdout+stderr in `out`.
int convert(const std::string& args, std::string* out) {
  return ferry::test::run_shell(ferry_image() + " convert " + args + " 2>&1", out);
}

void expect_one_line_error(int status, const std::string& out, const std::string& needle) {
  EXPECT_EQ(status, 1) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_EQ(out.rfind("ferry-image: error: ", 0), 0U) << out;
  EXPECT_NE(out.find(needle), std::string::npos) << "expected '" << needle << "' in: " << out;
  std::printf("[ error  ] %s", out.c_str());
}

// The source is a Docker schema 2 image (skopeo --format v2s2) in a plain-HTTP registry.
TEST(ConvertE2E, ARegistryImageBecomesAFerryImageOverPlainHttp) {
  RegistryServer server;
  ASSERT_TRUE(server.ok());
  TempDir tmp;
  const auto source_config = nlohmann::json::parse(make_app_layout(tmp, "src", "plain"));
  const std::string original = server.host() + "/orig/app:v1";
  const std::string target = server.host() + "/ferry/app:v1";
  std::string out;
  ASSERT_EQ(ferry::test::run_shell("skopeo copy --format v2s2 --dest-tls-verify=false oci:" + tmp / "src:v1" +
                                 " docker://" + original + " 2>&1",
                             &out),
            0)
      << out;

  ASSERT_EQ(convert("--source " + original + " --target " + target +
                        " --plain-http --compressor lz4 --chunk-size 65536",
                    &out),
            0)
      << out;
  const auto summary = nlohmann::json::parse(out);
  EXPECT_EQ(summary["compressor"], "lz4");
  EXPECT_EQ(summary["chunk_size"], 65536);
  ASSERT_EQ(summary["blobs"].size(), 1U);
  EXPECT_TRUE(summary["blobs"][0]["uploaded"].get<bool>());
  EXPECT_TRUE(summary["bootstrap"]["uploaded"].get<bool>());

  // skopeo's view of the target: manifest, annotations, config.
  const std::string raw = skopeo_raw(target);
  ASSERT_FALSE(raw.empty());
  const auto manifest = nlohmann::json::parse(raw);
  EXPECT_EQ(manifest["mediaType"], media_type::kOciManifest);
  EXPECT_EQ(Digest::of(raw).str(), summary["manifest"]);
  const auto& layers = manifest["layers"];
  ASSERT_EQ(layers.size(), 2U);
  EXPECT_EQ(layers[0]["mediaType"], kFerryBlobMediaType);
  EXPECT_EQ(layers[0]["annotations"][std::string(kFerryBlobAnnotation)], "true");
  EXPECT_EQ(layers[0]["digest"], summary["blobs"][0]["digest"]);
  EXPECT_EQ(layers[1]["mediaType"], media_type::kOciLayerGzip);
  EXPECT_EQ(layers[1]["annotations"][std::string(kFerryBootstrapAnnotation)], "true");
  EXPECT_FALSE(layers[1]["annotations"].contains(std::string(kFerryBlobAnnotation)));
  const std::string config_raw = skopeo_raw(target, "--config");
  ASSERT_FALSE(config_raw.empty());
  const auto config = nlohmann::json::parse(config_raw);
  for (const char* key : {"Entrypoint", "Cmd", "Env", "WorkingDir"})
    EXPECT_EQ(config["config"][key], source_config["config"][key]) << key;
  EXPECT_EQ(config["architecture"], "amd64");
  ASSERT_EQ(config["rootfs"]["diff_ids"].size(), 2U);
  EXPECT_EQ(config["rootfs"]["diff_ids"][0], layers[0]["digest"]);  // a blob is stored as is

  // The bootstrap layer's diff_id is its tar's digest; the image it holds checks against the blob.
  ASSERT_EQ(
      ferry::test::run_shell(
          "skopeo copy --src-tls-verify=false docker://" + target + " oci:" + tmp / "back:v1 2>&1", &out),
      0)
      << out;
  auto back = OciLayout::open(tmp / "back");
  ASSERT_TRUE(back.ok());
  const Digest boot_digest = *Digest::parse(layers[1]["digest"].get<std::string>());
  ASSERT_EQ(ferry::test::run_shell("gzip -dc " + back->blob_path(boot_digest) + " > " + tmp / "boot.tar"), 0);
  EXPECT_EQ(config["rootfs"]["diff_ids"][1], Digest::of(ferry::test::read_file(tmp / "boot.tar")).str());
  const Digest blob_digest = *Digest::parse(layers[0]["digest"].get<std::string>());
  ASSERT_EQ(ferry::test::run_shell("mkdir -p " + tmp / "x " + tmp / "blobs && tar -xf " + tmp / "boot.tar -C " +
                             tmp / "x && cp " + back->blob_path(blob_digest) + " " + tmp / "blobs/"),
            0);
  ASSERT_EQ(
      ferry::test::run_shell(
          ferry_image() + " check " + tmp / "x/image/image.boot --blob-dir " + tmp / "blobs 2>&1", &out),
      0)
      << out;

  // Again: the same manifest, nothing uploaded.
  ASSERT_EQ(convert("--source " + original + " --target " + target +
                        " --plain-http --compressor lz4 --chunk-size 65536",
                    &out),
            0)
      << out;
  const auto again = nlohmann::json::parse(out);
  EXPECT_FALSE(again["blobs"][0]["uploaded"].get<bool>());
  EXPECT_FALSE(again["bootstrap"]["uploaded"].get<bool>());
  EXPECT_EQ(again["manifest"], summary["manifest"]);
}

TEST(ConvertE2E, FailuresAreOneLineAndPushNoManifest) {
  RegistryConfig rc;
  rc.auth = RegistryConfig::Auth::kBasic;
  RegistryServer server(rc);
  ASSERT_TRUE(server.ok());
  TempDir tmp;
  make_app_layout(tmp, "src", "fail");
  const std::string creds = "alice:" + server.config().password;
  std::string out;

  // Unreachable registry (nothing listens on the port).
  const std::string nowhere = "127.0.0.1:" + std::to_string(test::free_tcp_port());
  expect_one_line_error(
      convert("--source " + nowhere + "/x/y:v1 --target oci:" + tmp / "out:v1 --plain-http", &out), out,
      nowhere);
  EXPECT_FALSE(std::filesystem::exists(tmp / "out/index.json")) << "nothing written for a failed source";

  // Bad credentials for the target: refused, the password never printed, no manifest.
  const std::string target = server.host() + "/ferry/fail:v1";
  expect_one_line_error(convert("--source oci:" + tmp / "src:v1 --target " + target +
                                    " --plain-http --target-creds 'alice:wrong'",
                                &out),
                        out, "HTTP 401 (the registry refused the credentials)");
  EXPECT_EQ(out.find("wrong"), std::string::npos) << out;
  EXPECT_FALSE(has_manifest(target, creds));
  // No credentials at all (and an empty authfile): the same.
  ferry::test::run_shell("echo '{}' > " + tmp / "config.json");
  expect_one_line_error(convert("--source oci:" + tmp / "src:v1 --target " + target +
                                    " --plain-http --authfile " + tmp / "config.json",
                                &out),
                        out, "requires credentials");

  // A tag the source does not have.
  ASSERT_EQ(convert("--source oci:" + tmp / "src:v1 --target " + server.host() +
                        "/orig/fail:v1 --plain-http --target-creds '" + creds + "'",
                    &out),
            0)
      << out;
  expect_one_line_error(convert("--source " + server.host() + "/orig/fail:nope --source-creds '" + creds +
                                    "' --target " + target + " --plain-http --target-creds '" + creds + "'",
                                &out),
                        out, "nope");
  EXPECT_FALSE(has_manifest(target, creds));

  // A layer whose bytes no longer match its digest.
  auto layout = OciLayout::open(tmp / "src");
  ASSERT_TRUE(layout.ok());
  auto mdesc = layout->resolve("v1");
  ASSERT_TRUE(mdesc.ok());
  auto parsed = parse_manifest(*layout->read_blob(*mdesc, kMaxManifestSize), mdesc->media_type);
  ASSERT_TRUE(parsed.ok());
  const ImageManifest manifest = std::get<ImageManifest>(*parsed);
  const std::string layer_path = layout->blob_path(manifest.layers[0].digest);
  const std::string good_layer = ferry::test::read_file(layer_path);
  {
    std::string damaged = good_layer;
    damaged[damaged.size() / 2] = static_cast<char>(damaged[damaged.size() / 2] ^ 0x5a);
    std::ofstream(layer_path, std::ios::binary | std::ios::trunc) << damaged;
  }
  expect_one_line_error(convert("--source oci:" + tmp / "src:v1 --target " + target +
                                    " --plain-http --target-creds '" + creds + "'",
                                &out),
                        out, std::string(manifest.layers[0].digest.hex().substr(0, 12)));
  EXPECT_FALSE(has_manifest(target, creds));

  // A layer that matches its digest but is not a tar: the builder names it.
  TempDir tmp2;
  const std::string garbage = "this is not a tar archive, not even gzip'd";
  auto bad = OciLayout::create(tmp2 / "bad");
  ASSERT_TRUE(bad.ok());
  auto layer_desc = bad->write_blob(garbage, std::string(media_type::kOciLayerGzip));
  ASSERT_TRUE(layer_desc.ok());
  const std::string cfg =
      R"({"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[")" +
      Digest::of(garbage).str() + R"("]}})";
  ImageManifest m;
  m.media_type = media_type::kOciManifest;
  m.config = *bad->write_blob(cfg, std::string(media_type::kOciConfig));
  m.layers = {*layer_desc};
  ASSERT_TRUE(bad->set_tag(*bad->write_blob(serialize(m), std::string(media_type::kOciManifest)), "v1").ok());
  expect_one_line_error(convert("--source oci:" + tmp2 / "bad:v1 --target " + target +
                                    " --plain-http --target-creds '" + creds + "'",
                                &out),
                        out, "layer 1");
  EXPECT_FALSE(has_manifest(target, creds));
}

// Bearer token auth (the WWW-Authenticate flow with the test token server), credentials from a
// docker config.json given with --authfile.
TEST(ConvertE2E, TokenAuthWithCredentialsFromAnAuthfile) {
  RegistryConfig rc;
  rc.auth = RegistryConfig::Auth::kToken;
  RegistryServer server(rc);
  ASSERT_TRUE(server.ok());
  TempDir tmp;
  make_app_layout(tmp, "src", "token");
  const std::string creds = "alice:" + server.config().password;
  const nlohmann::json authfile = {{"auths", {{server.host(), {{"auth", base64_encode(creds)}}}}}};
  {
    std::ofstream out(tmp / "config.json");
    out << authfile.dump();
  }
  ::chmod((tmp / "config.json").c_str(), 0600);
  const std::string target = server.host() + "/ferry/token:v1";
  std::string out;
  ASSERT_EQ(convert("--source oci:" + tmp / "src:v1 --target " + target + " --plain-http --authfile " +
                        tmp / "config.json",
                    &out),
            0)
      << out;
  EXPECT_EQ(out.find(server.config().password), std::string::npos) << out;
  const auto summary = nlohmann::json::parse(out);
  EXPECT_TRUE(summary["blobs"][0]["uploaded"].get<bool>());
  EXPECT_TRUE(has_manifest(target, creds));
  // Without the authfile's credentials: refused, nothing new.
  ferry::test::run_shell("echo '{}' > " + tmp / "empty.json");
  expect_one_line_error(convert("--source oci:" + tmp / "src:v1 --target " + server.host() +
                                    "/ferry/token2:v1 --plain-http --authfile " + tmp / "empty.json",
                                &out),
                        out, "token");
  EXPECT_FALSE(has_manifest(server.host() + "/ferry/token2:v1", creds));
}

TEST(ConvertE2E, ABadReferenceIsOneLineAndExitStatus1) {
  std::string out;
  const int status =
      ferry::test::run_shell(ferry_image() + " convert --source busybox --target oci:/nonexistent:v1 2>&1", &out);
  EXPECT_EQ(status, 1) << out;
  EXPECT_NE(out.find("invalid image reference 'busybox'"), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
}

}  // namespace
}  // namespace ferry::oci
