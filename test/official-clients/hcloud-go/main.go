// Command hcloud-go-check drives Hetzner's official Go client (github.com/hetznercloud/hcloud-go/v2)
// through Berth's cloud surface. Run by test/integration/hetzner-official-clients.test.ts against
// the local cloud with HCLOUD_ENDPOINT, HCLOUD_TOKEN and HCLOUD_CHECK (see ../hcloud_python.py, whose
// output document this one matches); prints one JSON document of what the client saw. An error
// that is not an expected one (the client could not read an answer) exits with status 1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"
)

type check struct {
	Prefix        string   `json:"prefix"`
	PublicKey     string   `json:"publicKey"`
	UserData      string   `json:"userData"`
	DescribeTypes []string `json:"describeTypes"`
	Unavailable   struct {
		ServerType string `json:"serverType"`
		Location   string `json:"location"`
	} `json:"unavailable"`
	Removed string `json:"removed"`
}

type obj = map[string]any

func must[T any](value T, err error) T {
	if err != nil {
		panic(err)
	}
	return value
}

func must3[T any](value T, _ *hcloud.Response, err error) T {
	return must(value, err)
}

// apiError is the API error a call failed with; success is a failed expectation.
func apiError(err error) hcloud.Error {
	var apiErr hcloud.Error
	if errors.As(err, &apiErr) {
		return apiErr
	}
	if err == nil {
		panic("the call was expected to fail")
	}
	panic(err)
}

func code(err error) string {
	return string(apiError(err).Code)
}

func main() {
	var c check
	must(0, json.Unmarshal([]byte(os.Getenv("HCLOUD_CHECK")), &c))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	options := []hcloud.ClientOption{
		hcloud.WithEndpoint(os.Getenv("HCLOUD_ENDPOINT")),
		hcloud.WithToken(os.Getenv("HCLOUD_TOKEN")),
		hcloud.WithApplication("berth-check", "1"),
		hcloud.WithPollOpts(hcloud.PollOpts{BackoffFunc: hcloud.ConstantBackoff(100 * time.Millisecond)}),
	}
	client := hcloud.NewClient(options...)
	strict := hcloud.NewClient(append(options, hcloud.WithRetryOpts(hcloud.RetryOpts{MaxRetries: 0}))...)
	wait := func(actions ...*hcloud.Action) {
		must(0, client.Action.WaitFor(ctx, actions...))
	}
	seen := obj{}

	// The first call meets an injected 429: a client told not to retry reports its code, the default one retries.
	_, _, err := strict.Location.List(ctx, hcloud.LocationListOpts{})
	seen["rateLimited"] = code(err)
	locations := []string{}
	for _, l := range must(client.Location.All(ctx)) {
		locations = append(locations, l.Name)
	}
	sort.Strings(locations)
	seen["locations"] = locations

	types := map[string]*hcloud.ServerType{}
	for _, t := range must(client.ServerType.All(ctx)) {
		types[t.Name] = t
	}
	described := obj{}
	for _, name := range c.DescribeTypes {
		t, ok := types[name]
		if !ok {
			described[name] = nil
			continue
		}
		perLocation := obj{}
		for _, l := range t.Locations {
			var deprecation any
			if l.Deprecation != nil {
				deprecation = obj{"announced": l.Deprecation.Announced.Unix(), "unavailableAfter": l.Deprecation.UnavailableAfter.Unix()}
			}
			perLocation[l.Location.Name] = obj{"available": l.Available, "recommended": l.Recommended, "deprecation": deprecation}
		}
		described[name] = obj{"disk": t.Disk, "architecture": t.Architecture, "storageType": t.StorageType, "locations": perLocation}
	}
	seen["serverTypes"] = described

	image := must3(client.Image.GetByNameAndArchitecture(ctx, "debian-12", hcloud.ArchitectureX86))
	seen["image"] = obj{"name": image.Name, "type": image.Type}

	keyName := c.Prefix + "-key"
	key := must3(client.SSHKey.Create(ctx, hcloud.SSHKeyCreateOpts{Name: keyName, PublicKey: c.PublicKey, Labels: map[string]string{"berth-check": c.Prefix}}))
	byName := must3(client.SSHKey.GetByName(ctx, keyName))
	keysBySelector := []string{}
	for _, k := range must(client.SSHKey.AllWithOpts(ctx, hcloud.SSHKeyListOpts{ListOpts: hcloud.ListOpts{LabelSelector: "berth-check=" + c.Prefix}})) {
		keysBySelector = append(keysBySelector, k.Name)
	}
	_, _, err = client.SSHKey.Create(ctx, hcloud.SSHKeyCreateOpts{Name: keyName, PublicKey: c.PublicKey})
	seen["sshKey"] = obj{"name": key.Name, "labels": key.Labels, "byName": byName != nil && byName.ID == key.ID, "bySelector": keysBySelector, "duplicate": code(err)}

	serverName := c.Prefix + "-server"
	labels := map[string]string{"berth-customer": c.Prefix, "berth-check": "yes"}
	created := must3(client.Server.Create(ctx, hcloud.ServerCreateOpts{
		Name: serverName, ServerType: &hcloud.ServerType{Name: "cx33"}, Image: &hcloud.Image{Name: "debian-12"},
		Location: &hcloud.Location{Name: "fsn1"}, SSHKeys: []*hcloud.SSHKey{key}, Labels: labels, UserData: c.UserData,
	}))
	wait(append([]*hcloud.Action{created.Action}, created.NextActions...)...)
	server := must3(client.Server.GetByID(ctx, created.Server.ID))
	state := func() obj {
		s := must3(client.Server.GetByID(ctx, server.ID))
		return obj{"status": s.Status, "serverType": s.ServerType.Name, "disk": s.PrimaryDiskSize}
	}
	serversBySelector := []string{}
	for _, s := range must(client.Server.AllWithOpts(ctx, hcloud.ServerListOpts{ListOpts: hcloud.ListOpts{LabelSelector: "berth-customer=" + c.Prefix}})) {
		serversBySelector = append(serversBySelector, s.Name)
	}
	_, _, err = client.Server.Create(ctx, hcloud.ServerCreateOpts{Name: serverName, ServerType: &hcloud.ServerType{Name: "cx33"}, Image: &hcloud.Image{Name: "debian-12"}})
	serverSeen := state()
	for k, v := range (obj{"location": server.Location.Name, "labels": server.Labels, "image": server.Image.Name, "nextActions": len(created.NextActions), "bySelector": serversBySelector, "duplicate": code(err)}) {
		serverSeen[k] = v
	}
	seen["server"] = serverSeen

	power := obj{}
	wait(must3(client.Server.Shutdown(ctx, server)))
	power["shutdown"] = state()["status"]
	wait(must3(client.Server.Poweron(ctx, server)))
	power["poweron"] = state()["status"]
	wait(must3(client.Server.Poweroff(ctx, server)))
	power["poweroff"] = state()["status"]
	seen["power"] = power

	change := obj{}
	_, _, err = client.Server.ChangeType(ctx, server, hcloud.ServerChangeTypeOpts{ServerType: &hcloud.ServerType{Name: "cx23"}, UpgradeDisk: false})
	change["downgrade"] = code(err)
	wait(must3(client.Server.ChangeType(ctx, server, hcloud.ServerChangeTypeOpts{ServerType: &hcloud.ServerType{Name: "cx43"}, UpgradeDisk: false})))
	change["upgradeKeepingDisk"] = state()
	wait(must3(client.Server.ChangeType(ctx, server, hcloud.ServerChangeTypeOpts{ServerType: &hcloud.ServerType{Name: "cx33"}, UpgradeDisk: false})))
	change["backWithinDisk"] = state()
	seen["changeType"] = change

	description := c.Prefix + " snapshot"
	snapshot := must3(client.Server.CreateImage(ctx, server, &hcloud.ServerCreateImageOpts{Type: hcloud.ImageTypeSnapshot, Description: &description, Labels: map[string]string{"berth-check": c.Prefix}}))
	wait(snapshot.Action)
	imageNow := must3(client.Image.GetByID(ctx, snapshot.Image.ID))
	_, _, err = client.Server.Create(ctx, hcloud.ServerCreateOpts{Name: c.Prefix + "-small", ServerType: &hcloud.ServerType{Name: "cx23"}, Image: &hcloud.Image{ID: snapshot.Image.ID}})
	seen["snapshot"] = obj{
		"type": imageNow.Type, "status": imageNow.Status, "diskSize": imageNow.DiskSize, "labels": imageNow.Labels,
		"createdFrom": imageNow.CreatedFrom.Name, "smallerType": code(err), "smallerTypeMessage": apiError(err).Message,
	}

	// hcloud-go answers a 404 not_found of a get by id with no object and no error.
	notFound := func(found bool, err error) string {
		if err != nil {
			return code(err)
		}
		if found {
			panic("expected no object")
		}
		return "not_found"
	}
	missing, _, err := client.Server.GetByID(ctx, 2_000_000_000)
	errs := obj{"notFound": notFound(missing != nil, err)}
	_, _, err = client.Server.Create(ctx, hcloud.ServerCreateOpts{Name: c.Prefix + "-unavailable", ServerType: &hcloud.ServerType{Name: c.Unavailable.ServerType},
		Image: &hcloud.Image{Name: "debian-12"}, Location: &hcloud.Location{Name: c.Unavailable.Location}})
	errs["unavailable"] = code(err)
	_, _, err = client.Server.Create(ctx, hcloud.ServerCreateOpts{Name: c.Prefix + "-removed", ServerType: &hcloud.ServerType{Name: c.Removed}, Image: &hcloud.Image{Name: "debian-12"}})
	errs["removed"] = code(err)
	seen["errors"] = errs

	_, err = client.Image.Delete(ctx, imageNow)
	must(0, err)
	deleted := must3(client.Server.DeleteWithResult(ctx, server))
	wait(deleted.Action)
	_, err = client.SSHKey.Delete(ctx, key)
	must(0, err)
	gone := obj{}
	s, _, err := client.Server.GetByID(ctx, server.ID)
	gone["server"] = notFound(s != nil, err)
	i, _, err := client.Image.GetByID(ctx, imageNow.ID)
	gone["snapshot"] = notFound(i != nil, err)
	k, _, err := client.SSHKey.GetByID(ctx, key.ID)
	gone["sshKey"] = notFound(k != nil, err)
	seen["deleted"] = gone

	out := must(json.Marshal(seen))
	fmt.Println(string(out))
}
