package deploy

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/nexus/nexus/cmd/nexus/agentconfig"
)

// manifests is every object of deploy/kubernetes, decoded strictly.
type manifests struct {
	statefulSets []*appsv1.StatefulSet
	services     []*corev1.Service
	pdbs         []*policyv1.PodDisruptionBudget
	configMaps   []*corev1.ConfigMap
}

// yamlDocs splits a multi-document YAML file.
func yamlDocs(s string) []string {
	var docs []string
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(s, -1) {
		if strings.TrimSpace(regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(d, "")) != "" {
			docs = append(docs, d)
		}
	}
	return docs
}

// decodeManifest decodes one document into the API type of its kind,
// rejecting unknown and duplicate fields.
func decodeManifest(doc string, m *manifests) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
		return err
	}
	switch tm.APIVersion + " " + tm.Kind {
	case "apps/v1 StatefulSet":
		return decodeInto(doc, &m.statefulSets)
	case "v1 Service":
		return decodeInto(doc, &m.services)
	case "policy/v1 PodDisruptionBudget":
		return decodeInto(doc, &m.pdbs)
	case "v1 ConfigMap":
		return decodeInto(doc, &m.configMaps)
	}
	return fmt.Errorf("unexpected object %q %q", tm.APIVersion, tm.Kind)
}

// decodeInto decodes doc strictly into a new T appended to list.
func decodeInto[T any](doc string, list *[]*T) error {
	v := new(T)
	*list = append(*list, v)
	return yaml.UnmarshalStrict([]byte(doc), v)
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in kubernetes/: %v", err)
	}
	m := &manifests{}
	for _, f := range files {
		for i, doc := range yamlDocs(readFile(t, f)) {
			if err := decodeManifest(doc, m); err != nil {
				t.Fatalf("%s, document %d: %v", f, i+1, err)
			}
		}
	}
	if len(m.statefulSets) != 1 || len(m.services) != 2 || len(m.pdbs) != 1 || len(m.configMaps) != 1 {
		t.Fatalf("want 1 StatefulSet, 2 Services, 1 PodDisruptionBudget, 1 ConfigMap; got %d, %d, %d, %d",
			len(m.statefulSets), len(m.services), len(m.pdbs), len(m.configMaps))
	}
	return m
}

// TestKubernetesManifestsDecodeStrictly decodes every manifest into the
// k8s.io/api types with unknown fields refused, and shows that a misspelt
// field fails.
func TestKubernetesManifestsDecodeStrictly(t *testing.T) {
	loadManifests(t)
	for _, c := range []struct{ file, from, to string }{
		{"statefulset.yaml", "podManagementPolicy:", "podManagmentPolicy:"},
		{"statefulset.yaml", "readinessProbe:", "readynessProbe:"},
		{"services.yaml", " publishNotReadyAddresses: true", " publishNotReadyAdresses: true"},
		{"pdb.yaml", "maxUnavailable:", "maxUnavailible:"},
		{"configmap.yaml", "data:", "datas:"},
	} {
		s := readFile(t, filepath.Join("kubernetes", c.file))
		if !strings.Contains(s, c.from) {
			t.Fatalf("%s has no %q", c.file, c.from)
		}
		var err error
		for _, doc := range yamlDocs(strings.Replace(s, c.from, c.to, 1)) {
			if err = decodeManifest(doc, &manifests{}); err != nil {
				break
			}
		}
		if field, _, _ := strings.Cut(strings.TrimSpace(c.to), ":"); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s with %q: error %v, want an unknown field error naming it", c.file, c.to, err)
		}
	}
}

// TestKubernetesManifestsAgree checks the cross-references: selectors and
// labels, the headless Service of the StatefulSet, the ports of the agent's
// settings, the probes, the config file mount and the join addresses.
func TestKubernetesManifestsAgree(t *testing.T) {
	m := loadManifests(t)
	sts, cm, pdb := m.statefulSets[0], m.configMaps[0], m.pdbs[0]
	spec := sts.Spec
	tmplLabels := labels.Set(spec.Template.Labels)

	if spec.Replicas == nil || *spec.Replicas != 3 {
		t.Errorf("replicas %v, want 3", spec.Replicas)
	}
	if spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("podManagementPolicy %q, want Parallel", spec.PodManagementPolicy)
	}
	if len(spec.VolumeClaimTemplates) == 0 {
		t.Error("no volumeClaimTemplates")
	}
	sel, err := metav1.LabelSelectorAsSelector(spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(tmplLabels) {
		t.Errorf("StatefulSet selector %v (%v) does not match its pod labels %v", spec.Selector, err, tmplLabels)
	}
	psel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil || psel.Empty() || !psel.Matches(tmplLabels) {
		t.Errorf("PodDisruptionBudget selector %v does not match the pods", pdb.Spec.Selector)
	}
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.String() != "1" || pdb.Spec.MinAvailable != nil {
		t.Errorf("PodDisruptionBudget maxUnavailable %v minAvailable %v, want maxUnavailable 1 only", pdb.Spec.MaxUnavailable, pdb.Spec.MinAvailable)
	}

	// Names are valid DNS labels (they become host names).
	for _, n := range []string{sts.Name, cm.Name, pdb.Name, m.services[0].Name, m.services[1].Name} {
		if errs := validation.IsDNS1123Label(n); len(errs) > 0 {
			t.Errorf("name %q: %v", n, errs)
		}
	}

	if len(spec.Template.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(spec.Template.Spec.Containers))
	}
	ctr := spec.Template.Spec.Containers[0]
	ports := map[string]corev1.ContainerPort{}
	for _, p := range ctr.Ports {
		if errs := validation.IsValidPortName(p.Name); len(errs) > 0 {
			t.Errorf("container port name %q: %v", p.Name, errs)
		}
		ports[p.Name] = p
	}

	// The headless Service: the StatefulSet's, publishing pods that are
	// not ready yet. The client Service: the same pods.
	var headless *corev1.Service
	for _, svc := range m.services {
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(tmplLabels) || len(svc.Spec.Selector) == 0 {
			t.Errorf("Service %s selector %v does not match the pods %v", svc.Name, svc.Spec.Selector, tmplLabels)
		}
		if svc.Spec.ClusterIP == corev1.ClusterIPNone {
			headless = svc
		}
		for _, sp := range svc.Spec.Ports {
			cp, ok := ports[sp.TargetPort.String()]
			proto := sp.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			cproto := cp.Protocol
			if cproto == "" {
				cproto = corev1.ProtocolTCP
			}
			if !ok || proto != cproto {
				t.Errorf("Service %s port %s targets %q (%s): no such container port", svc.Name, sp.Name, sp.TargetPort.String(), proto)
			}
		}
	}
	if headless == nil || headless.Name != spec.ServiceName || !headless.Spec.PublishNotReadyAddresses {
		t.Fatalf("the StatefulSet's serviceName %q is not a headless Service with publishNotReadyAddresses", spec.ServiceName)
	}

	// Probes: readiness /ready, liveness /health, on the admin API port.
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"readiness", ctr.ReadinessProbe, "/ready"}, {"liveness", ctr.LivenessProbe, "/health"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "http" {
			t.Errorf("%s probe %+v, want GET %s on port http", p.name, p.probe, p.path)
		}
	}

	// The config file: the ConfigMap mounted where --config points.
	cfgFile := ""
	for i, a := range ctr.Args {
		if a == "--config" && i+1 < len(ctr.Args) {
			cfgFile = ctr.Args[i+1]
		}
	}
	var cfgMount, dataMount *corev1.VolumeMount
	for i := range ctr.VolumeMounts {
		vm := &ctr.VolumeMounts[i]
		for _, v := range spec.Template.Spec.Volumes {
			if v.Name == vm.Name && v.ConfigMap != nil && v.ConfigMap.Name == cm.Name {
				cfgMount = vm
			}
		}
		if vm.Name == spec.VolumeClaimTemplates[0].Name {
			dataMount = vm
		}
	}
	if cfgMount == nil || dataMount == nil {
		t.Fatalf("the container mounts no ConfigMap %s (%v) or no claim %s (%v)", cm.Name, cfgMount, spec.VolumeClaimTemplates[0].Name, dataMount)
	}
	key := strings.TrimPrefix(cfgFile, cfgMount.MountPath+"/")
	if _, ok := cm.Data[key]; !ok || key == cfgFile {
		t.Fatalf("--config %q is not a key of ConfigMap %s mounted at %s", cfgFile, cm.Name, cfgMount.MountPath)
	}

	// The settings load, with the pod's environment, through the agent's
	// own loader; they agree with the ports, the volume and the peers.
	env := map[string]string{}
	for _, e := range ctr.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env[e.Name] = sts.Name + "-0"
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP":
			env[e.Name] = "10.244.0.7"
		default:
			env[e.Name] = e.Value
		}
	}
	cfg, err := agentconfig.Load([]string{"--config", cfgFile}, func(k string) string { return env[k] },
		func(p string) ([]byte, error) {
			if p == cfgFile {
				return []byte(cm.Data[key]), nil
			}
			return nil, os.ErrNotExist
		},
		func() (string, error) { return "unused", nil }, func() (string, error) { return t.TempDir(), nil })
	if err != nil {
		t.Fatalf("ConfigMap %s %s with the pod's environment: %v", cm.Name, key, err)
	}
	if cfg.Node != sts.Name+"-0" || cfg.Bind != "10.244.0.7" {
		t.Errorf("node %q bind %q: the pod name and IP do not reach the settings", cfg.Node, cfg.Bind)
	}
	if cfg.DataDir != dataMount.MountPath {
		t.Errorf("data_dir %s is not the volume mount %s", cfg.DataDir, dataMount.MountPath)
	}
	portOf := func(hostPort string) int32 {
		_, p, err := net.SplitHostPort(hostPort)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(p)
		return int32(n)
	}
	for name, want := range map[string]int32{
		"http": portOf(cfg.HTTPAddr), "gateway": portOf(cfg.GatewayAddr), "raft": int32(cfg.RaftPort),
		"gossip-tcp": int32(cfg.GossipPort), "gossip-udp": int32(cfg.GossipPort),
	} {
		if p, ok := ports[name]; !ok || p.ContainerPort != want {
			t.Errorf("container port %s = %d, the settings say %d", name, p.ContainerPort, want)
		}
	}
	if ports["gossip-udp"].Protocol != corev1.ProtocolUDP {
		t.Error("gossip-udp is not UDP: memberlist gossips over UDP")
	}
	if cfg.BootstrapExpect != int(*spec.Replicas) {
		t.Errorf("bootstrap_expect %d, replicas %d", cfg.BootstrapExpect, *spec.Replicas)
	}
	var wantJoin []string
	for i := 0; i < int(*spec.Replicas); i++ {
		wantJoin = append(wantJoin, fmt.Sprintf("%s-%d.%s:%d", sts.Name, i, headless.Name, cfg.GossipPort))
	}
	if strings.Join(cfg.Join, " ") != strings.Join(wantJoin, " ") {
		t.Errorf("join %v, want the pods through the headless Service: %v", cfg.Join, wantJoin)
	}
	// Prometheus' scrape annotation names the admin API port.
	if a := spec.Template.Annotations["prometheus.io/port"]; a != strconv.Itoa(int(ports["http"].ContainerPort)) {
		t.Errorf("prometheus.io/port annotation %q, admin API port %d", a, ports["http"].ContainerPort)
	}
}
